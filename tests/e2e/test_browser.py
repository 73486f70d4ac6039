"""Click through the debugger as the walkthrough's researcher does, in a real browser:
ask, sort, ablate and see the value move by the measured amount, patch from a second prompt and
see the value the library computes, trace a head through its key, open a node page with examples
and an explanation, run the lens; reload a shared URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from lenscope.defaults import DEMO_DISTRACTOR, DEMO_PROMPT, DEMO_TARGET
from lenscope.model.load import load_model
from tests.e2e.conftest import ARTIFACTS, shipped_model

pytestmark = pytest.mark.slow


@pytest.fixture()
def page(browser: Any, served: str) -> Any:
    ctx = browser.new_context(viewport={"width": 1366, "height": 900})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.errors = errors
    yield pg
    ctx.close()
    assert not errors, errors


def shot(pg: Any, name: str) -> None:
    pg.evaluate("window.scrollTo(0, 0)")
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def values(pg: Any, column: str) -> list[float | None]:
    cells = pg.locator(f"[data-testid=node-table] tbody td[data-column={column}]")
    return [
        None if v == "" else float(v)
        for v in cells.evaluate_all("cs => cs.map(c => c.dataset.value)")
    ]


def value(pg: Any) -> float:
    return float(pg.get_attribute("[data-testid=value-number]", "data-value"))


def wait_value_change(pg: Any) -> float:
    pg.wait_for_selector("[data-testid=value-change]", timeout=60_000)
    pg.wait_for_function("document.querySelectorAll('.loading').length === 0", timeout=60_000)
    return value(pg)


def test_ask_sort_ablate_trace(page: Any, served: str) -> None:
    pg = page
    pg.goto(served)
    pg.wait_for_selector("[data-testid=node-table] tbody tr", timeout=60_000)
    assert pg.input_value("textarea[name=prompt]") == DEMO_PROMPT
    assert (
        pg.input_value("input[name=target]") == ")"
        and pg.input_value("input[name=distractor]") == ","
    )
    shot(pg, "01-debugger")

    # the table opens on the biggest estimated total effects of either sign (|▼|)
    arrow = "button.sort[data-column=total_effect] .arrow"
    assert pg.text_content(arrow).strip() == "|▼|"
    mags = [abs(v) for v in values(pg, "total_effect") if v is not None]
    assert len(mags) >= 3 and mags == sorted(mags, reverse=True)
    # sort by estimated total effect: largest magnitude first, then by signed value both ways
    pg.click("button.sort[data-column=ablation_effect]")
    assert "sort=ablation_effect" in pg.url
    pg.click("button.sort[data-column=total_effect]")
    assert "sort=" not in pg.url and "dir=" not in pg.url  # the default view: short URLs
    assert [abs(v) for v in values(pg, "total_effect") if v is not None] == mags
    assert pg.text_content(arrow).strip() == "|▼|"
    pg.click("button.sort[data-column=total_effect]")
    assert "abs=0" in pg.url and "dir=" not in pg.url
    signed = [v for v in values(pg, "total_effect") if v is not None]
    assert signed == sorted(signed, reverse=True) and pg.text_content(arrow).strip() == "▼"
    pg.click("button.sort[data-column=total_effect]")
    assert "dir=asc" in pg.url and "abs=0" in pg.url
    assert [v for v in values(pg, "total_effect") if v is not None] == sorted(signed)
    assert pg.text_content(arrow).strip() == "▲"
    pg.click("button.sort[data-column=total_effect]")
    assert "sort=" not in pg.url and "dir=" not in pg.url and "abs=" not in pg.url
    # explanations and top tokens stay inside their cell (whitespace tokens are long)
    pg.wait_for_function("document.querySelectorAll('.loading').length === 0", timeout=60_000)
    spill = pg.locator("[data-testid=node-table] .summary").evaluate_all(
        "ss => ss.filter(s => s.parentElement.scrollWidth > s.parentElement.clientWidth + 1"
        " || [...s.children].some(c => c.getBoundingClientRect().height"
        " > 3 * parseFloat(getComputedStyle(c).fontSize)))"
        ".map(s => s.closest('tr').dataset.node)"
    )
    assert not spill, spill
    pg.click("button.sort[data-column=direct_effect]")
    direct = [v for v in values(pg, "direct_effect") if v is not None]
    assert [abs(v) for v in direct] == sorted((abs(v) for v in direct), reverse=True)

    # ablate the node with the largest measured effect: the value drops by that amount
    pg.click("button.sort[data-column=ablation_effect]")
    row = pg.locator("[data-testid=node-table] tbody tr").first
    node = row.get_attribute("data-node")
    measured = float(row.locator("td[data-column=ablation_effect]").get_attribute("data-value"))
    before = value(pg)
    row.locator("[data-action=ablate]").click()
    after = wait_value_change(pg)
    assert f"ablate={node}" in pg.url.replace("%40", "@").replace("%3A", ":")
    assert abs((before - after) - measured) < 1e-3 + 1e-3 * abs(measured), (before, after, measured)
    assert pg.locator("[data-testid=interventions] li").count() == 1
    shot(pg, "02-ablated")

    # the URL is the whole view: reloading it shows the same ablated answer
    pg.reload()
    assert abs(wait_value_change(pg) - after) < 1e-6

    # remove the ablation: back to the original value
    pg.click("[data-testid=interventions] li [data-action=remove]")
    pg.wait_for_selector("[data-testid=value-change]", state="detached", timeout=60_000)
    pg.wait_for_function("document.querySelectorAll('.loading').length === 0", timeout=60_000)
    assert abs(value(pg) - before) < 1e-6

    # trace a later-layer head through its key: an earlier head feeds it
    pg.click("button.sort[data-column=total_effect]")
    heads = pg.locator("[data-testid=node-table] tbody tr[data-node^=L]")
    target = None
    for i in range(heads.count()):
        n = heads.nth(i).get_attribute("data-node")
        if ".H" in n and not n.startswith("L0."):
            target = heads.nth(i)
            break
    assert target is not None, "no head beyond layer 0 in the table"
    head = target.get_attribute("data-node")
    target.locator("[data-action=trace-k]").click()
    pg.wait_for_selector("[data-testid=trace-table] tbody tr", timeout=60_000)
    assert f"{head}:k" in pg.text_content("[data-testid=trace-panel] .chain")
    layer = int(head[1 : head.index(".")])
    pg.locator("[data-testid=trace-panel] .tabs button", has_text="component").click()
    traced = pg.locator("[data-testid=trace-table] tbody tr").evaluate_all(
        "rs => rs.map(r => r.dataset.node)"
    )
    earlier = [n for n in traced if ".H" in n and int(n[1 : n.index(".")]) < layer]
    assert earlier, traced
    shot(pg, "03-trace")


OTHER = DEMO_PROMPT.replace("assertEqual", "assertTrue")  # as many tokens, one differs


def api_value(served: str, prompt: str, interventions: list[dict[str, Any]] | None = None) -> float:
    """The question's value computed by the server's library for `prompt`."""
    base = served.split("/?", 1)[0]
    body: dict[str, Any] = {
        "prompt": prompt,
        "question": {
            "kind": "logit_diff",
            "target": [DEMO_TARGET],
            "distractor": [DEMO_DISTRACTOR],
        },
        "top_k": 1,
        "measure": 0,
    }
    if interventions is not None:
        body["interventions"] = {"interventions": interventions}
    r = httpx.post(f"{base}/api/why", json=body, timeout=120)
    assert r.status_code == 200, r.text
    return float(r.json()["value"])


def wait_value_not(pg: Any, old: float) -> float:
    pg.wait_for_function(
        "old => { const v = document.querySelector('[data-testid=value-number]');"
        " return v && Number(v.dataset.value) !== old"
        " && document.querySelectorAll('.loading').length === 0; }",
        arg=old,
        timeout=60_000,
    )
    return value(pg)


def test_patch_from_the_second_prompt(page: Any, served: str) -> None:
    pg = page
    pg.goto(served)
    pg.wait_for_selector("[data-testid=node-table] tbody tr", timeout=60_000)
    base = api_value(served, DEMO_PROMPT)
    assert abs(value(pg) - base) < 1e-6
    pg.locator("label.check", has_text="compare with a second prompt").locator("input").check()
    pg.fill("textarea[name=prompt2]", OTHER)
    pg.click("form[aria-label=question] button[type=submit]")
    pg.wait_for_selector("[data-testid=compare-panel]", timeout=60_000)

    # every hook the page offers to patch is a hook point of the served model
    model = load_model(shipped_model())
    offered = pg.locator("select[name=patch-hook] option").evaluate_all(
        "os => os.map(o => o.value)"
    )
    assert offered and set(offered) <= set(model.hook_dict), set(offered) - set(model.hook_dict)
    hook = f"blocks.{model.cfg.n_layers // 2}.hook_resid_pre"
    differs = [
        i
        for i, (a, b) in enumerate(
            zip(model.to_str_tokens(DEMO_PROMPT), model.to_str_tokens(OTHER), strict=True)
        )
        if a != b
    ]
    assert differs

    # patch the residual stream where the prompts differ: the value is the library's
    pg.select_option("select[name=patch-hook]", hook)
    pg.fill("input[name=patch-positions]", ",".join(map(str, differs)))
    pg.press("input[name=patch-positions]", "Enter")
    after = wait_value_change(pg)
    want = api_value(
        served,
        DEMO_PROMPT,
        [{"type": "patch", "hook": hook, "source": OTHER, "positions": differs}],
    )
    assert abs(after - want) < 1e-4 * max(1.0, abs(want)), (after, want)
    change = float(pg.get_attribute("[data-testid=value-change]", "data-value"))
    assert abs(change - (want - base)) < 1e-4 * max(1.0, abs(want)) and abs(change) > 1e-3
    assert "patch=" in pg.url
    shot(pg, "09-patch")

    # every position: the run from there on is the other prompt's, so is the value
    box = pg.locator("[data-testid=interventions] li[data-type=patch] input[name=positions]")
    box.fill("")
    box.press("Enter")
    whole = wait_value_not(pg, after)
    assert abs(whole - api_value(served, OTHER)) < 1e-4 * max(1.0, abs(whole)), whole

    # the URL is the view: a reload shows the same patched answer
    pg.reload()
    assert abs(wait_value_change(pg) - whole) < 1e-6
    pg.click("[data-testid=interventions] li [data-action=remove]")
    assert abs(wait_value_not(pg, whole) - base) < 1e-6


def test_steer_along_a_latent(page: Any, served: str) -> None:
    """The shipped SAE's latents are rows of the node table; steering along one moves the value
    to exactly what the library computes for that steer."""
    pg = page
    pg.goto(served + ("&" if "?" in served else "?") + "kinds=latent")
    pg.wait_for_selector("[data-testid=node-table] tbody tr", timeout=60_000)
    base = value(pg)
    steer = pg.locator("[data-testid=node-table] button[data-action=steer]")
    assert steer.count() > 0, "no latent rows: is mini's SAE shipped and served?"
    steer.first.click()
    after = wait_value_change(pg)
    (raw,) = parse_qs(urlparse(pg.url).query)["steer"]
    latent, coef, *rest = raw.split("~")
    iv: dict[str, Any] = {"type": "steer", "latent": latent, "coefficient": float(coef)}
    if rest and rest[0]:
        iv["hook"] = rest[0]
    if len(rest) > 1 and rest[1]:
        iv["positions"] = [int(x) for x in rest[1].split(",")]
    want = api_value(served, DEMO_PROMPT, [iv])
    assert abs(after - want) < 1e-4 * max(1.0, abs(want)), (after, want, raw)
    assert abs(after - base) > 1e-4, "steering changed nothing"
    shot(pg, "10-steer")


def test_node_page_examples_explanation_and_my_text(page: Any, served: str) -> None:
    pg = page
    pg.goto(served)
    pg.wait_for_selector("[data-testid=node-table] tbody tr", timeout=60_000)
    link = pg.locator("[data-testid=node-table] a[data-action=page]").first
    node = link.text_content()
    link.click()
    pg.wait_for_selector("[data-testid=examples] li", timeout=60_000)
    assert urlparse(pg.url).path == f"/node/{node}"
    assert pg.locator("[data-testid=examples] li").count() >= 5
    shaded = pg.locator("[data-testid=examples] .tok").evaluate_all(
        "ts => ts.filter(t => t.style.background && t.style.background !== 'transparent').length"
    )
    assert shaded > 0
    pg.click("[data-testid=explanation] button")
    pg.wait_for_selector("[data-testid=explanation] .explanation-item", timeout=60_000)
    assert "score" in pg.text_content("[data-testid=explanation]")
    pg.fill("textarea[name=mytext]", "for i in range(10):\n    print(i)")
    pg.click("[data-testid=my-text] button[type=submit]")
    pg.wait_for_selector("[data-testid=my-text] [data-testid=token-view] .tok", timeout=60_000)
    assert "text=for" in pg.url
    shot(pg, "04-node")
    nxt = pg.locator("a[rel=next]")
    if nxt.count():
        nxt.click()
        pg.wait_for_selector("[data-testid=examples] li", timeout=60_000)
    pg.click("text=← debugger")
    pg.wait_for_selector("[data-testid=node-table] tbody tr", timeout=60_000)


def test_node_pages_open_from_a_typed_or_shared_url(page: Any, served: str) -> None:
    """Node ids contain dots (L2.H3, L2.resid_post.F5): loading such a URL directly is the app."""
    pg = page
    base = served.split("/?", 1)[0]
    model = load_model(shipped_model())
    nodes = [f"L{model.cfg.n_layers - 1}.H0", "L0.N3"]
    if model.cfg.name == "mini":
        nodes.append("L2.resid_post.F5")  # its shipped SAE's latent
    for node in nodes:
        pg.goto(f"{base}/node/{node}")
        pg.wait_for_selector("[data-testid=examples] li", timeout=60_000)
        assert node in pg.locator("h1, h2").first.text_content()
        pg.reload()
        pg.wait_for_selector("[data-testid=examples] li", timeout=60_000)

    # the layer links say which layer they go to
    last = model.cfg.n_layers - 1
    pg.goto(f"{base}/node/L1.H0")
    pg.wait_for_selector("[data-testid=examples] li", timeout=60_000)
    assert pg.text_content("[data-nav=earlier-layer]").strip() == "← L0.H0 (layer 0)"
    if last >= 2:
        assert pg.text_content("[data-nav=later-layer]").strip() == "L2.H0 (layer 2) →"

    # a node the model does not have: its reason, and no made-up neighbours or text form
    bad = f"L{last + 5}.H{model.cfg.n_heads + 91}"
    pg.goto(f"{base}/node/{bad}")
    pg.wait_for_selector("[role=alert]", timeout=60_000)
    assert f"layer {last + 5} does not exist (0..{last})" in pg.text_content("[role=alert]")
    hrefs = pg.locator("nav.node-nav a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert all(not h.startswith("/node/") for h in hrefs), hrefs
    assert pg.locator("[data-testid=my-text]").count() == 0
    shot(pg, "04b-no-such-node")


def test_a_non_finite_answer_is_never_a_change(page: Any, served: str) -> None:
    """Steering with a huge coefficient makes the output inf/NaN: the page shows the server's
    rejection (or, from a server that answers null, "–"), never a change of -value."""
    pg = page
    pg.goto(served + ("&" if "?" in served else "?") + "kinds=latent")
    pg.wait_for_selector("[data-testid=node-table] tbody tr", timeout=60_000)
    steer = pg.locator("[data-testid=node-table] button[data-action=steer]")
    if steer.count() == 0:
        pytest.skip("no SAE latent rows to steer")
    latent = steer.first.locator("xpath=ancestor::tr").get_attribute("data-node")
    pg.goto(served + "&steer=" + latent.split("@")[0] + "~1e30")
    pg.wait_for_selector("[role=alert], [data-testid=value-change]", timeout=60_000)
    pg.wait_for_function("document.querySelectorAll('.loading').length === 0", timeout=60_000)
    if pg.locator("[data-testid=value-change]").count():
        assert pg.get_attribute("[data-testid=value-change]", "data-value") == ""
        assert pg.text_content("[data-testid=value-change]") == "–"
    else:
        assert "non-finite" in pg.text_content("[role=alert]")
    shot(pg, "11-non-finite")
    # the browser logs the rejected request itself; that is this test's point, not a page error
    pg.errors[:] = [e for e in pg.errors if "status of 400" not in e]


def test_lens_circuits_and_markov_pages(page: Any, served: str) -> None:
    pg = page
    pg.goto(served)
    pg.click("header nav >> text=Lens")
    pg.wait_for_selector("[data-testid=lens-heatmap] [role=gridcell]", timeout=60_000)
    pg.fill("input[name=watch]", " 10| n")
    pg.fill("input[name=generate]", "4")
    pg.click("text=Run the lens")
    pg.wait_for_selector("[data-testid=lens-watch]", timeout=60_000)
    assert pg.locator("[data-testid=lens-watch]").count() == 2
    shot(pg, "05-lens")
    lens_tuned_toggle(pg, served)
    pg.click("header nav >> text=Circuits")
    pg.wait_for_selector("[data-testid=head-scores] tbody tr", timeout=120_000)
    shot(pg, "06-circuits")
    pg.click("header nav >> text=Markov")
    pg.wait_for_selector("[data-testid=markov-chain]", timeout=60_000)
    shot(pg, "07-markov")


def watch_ranks(pg: Any) -> list[list[str]]:
    """The rank shown in every cell of each watched token's heatmap (rows, then positions)."""
    sections = pg.locator("[data-testid=lens-watch]")
    return [
        sections.nth(j).locator("[role=gridcell]").all_text_contents()
        for j in range(sections.count())
    ]


def api_watch_ranks(served: str, url: str, tuned: bool) -> list[list[str]]:
    """The same ranks from `POST /api/lens` for the page's own settings (read from its URL)."""
    q = parse_qs(urlparse(url).query)
    body = {
        "prompt": q["prompt"][0],
        "watch": q["watch"],
        "generate": int(q["generate"][0]),
        "tuned": tuned,
    }
    r = httpx.post(f"{served.split('/?', 1)[0]}/api/lens", json=body, timeout=120)
    assert r.status_code == 200, r.text
    ranks = r.json()["watch_rank"]  # [boundary][position][watched]
    return [[str(row[w]) for layer in ranks for row in layer] for w in range(len(q["watch"]))]


def lens_tuned_toggle(pg: Any, served: str) -> None:
    """The served model's shipped tuned lens: switch it on, see the API's numbers, reload."""
    info = httpx.get(f"{served.split('/?', 1)[0]}/api/model", timeout=60).json()
    assert info["tuned_lens"], "the served model ships a tuned lens (assets/lenses/mini-tuned)"
    title = "[data-testid=lens-title]"
    assert "logit lens" in pg.text_content(title)
    logit = api_watch_ranks(served, pg.url, tuned=False)
    assert watch_ranks(pg) == logit
    pg.check("[data-testid=lens-tuned]")
    pg.wait_for_selector(f"{title}:has-text('tuned lens ({info['tuned_lens']})')", timeout=60_000)
    assert parse_qs(urlparse(pg.url).query)["tuned"] == ["1"]
    tuned = api_watch_ranks(served, pg.url, tuned=True)
    assert tuned != logit, "the tuned lens ranks the watched tokens as the logit lens does"
    assert watch_ranks(pg) == tuned
    shot(pg, "05b-tuned-lens")
    pg.reload()
    pg.wait_for_selector(f"{title}:has-text('tuned lens')", timeout=60_000)
    assert pg.is_checked("[data-testid=lens-tuned]") and watch_ranks(pg) == tuned


def test_attention_question_from_a_token_pair(page: Any, served: str) -> None:
    pg = page
    pg.goto(served + "&gran=pair")
    pg.wait_for_selector("[data-testid=node-table] tbody tr", timeout=60_000)
    pg.locator("[data-testid=node-table] [data-action=attend]").first.click()
    pg.wait_for_selector("[data-testid=attention-table] tbody tr", timeout=60_000)
    assert "q=attention" in pg.url
    shot(pg, "08-attention")
