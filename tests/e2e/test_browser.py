"""Click through the debugger as the walkthrough's researcher does, in a real browser:
ask, sort, ablate and see the value move by the measured amount, trace a head through its key,
open a node page with examples and an explanation, run the lens; reload a shared URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest

from lenscope.defaults import DEMO_PROMPT
from tests.e2e.conftest import ARTIFACTS

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

    # sort by estimated total effect (largest magnitude first), flip it, flip it back
    pg.click("button.sort[data-column=ablation_effect]")
    assert "sort=ablation_effect" in pg.url
    pg.click("button.sort[data-column=total_effect]")
    assert "sort=" not in pg.url and "dir=" not in pg.url  # the default view: short URLs
    mags = [abs(v) for v in values(pg, "total_effect") if v is not None]
    assert len(mags) >= 3 and mags == sorted(mags, reverse=True)
    pg.click("button.sort[data-column=total_effect]")
    assert "dir=asc" in pg.url
    assert [abs(v) for v in values(pg, "total_effect") if v is not None] == sorted(mags)
    pg.click("button.sort[data-column=total_effect]")
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
    pg.click("[data-testid=interventions] li button")
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
    pg.click("header nav >> text=Circuits")
    pg.wait_for_selector("[data-testid=head-scores] tbody tr", timeout=120_000)
    shot(pg, "06-circuits")
    pg.click("header nav >> text=Markov")
    pg.wait_for_selector("[data-testid=markov-chain]", timeout=60_000)
    shot(pg, "07-markov")


def test_attention_question_from_a_token_pair(page: Any, served: str) -> None:
    pg = page
    pg.goto(served + "&gran=pair")
    pg.wait_for_selector("[data-testid=node-table] tbody tr", timeout=60_000)
    pg.locator("[data-testid=node-table] [data-action=attend]").first.click()
    pg.wait_for_selector("[data-testid=attention-table] tbody tr", timeout=60_000)
    assert "q=attention" in pg.url
    shot(pg, "08-attention")
