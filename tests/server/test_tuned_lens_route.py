"""The tuned lens over HTTP: shipped `mini` served as a user starts it (its shipped tuned lens
found at startup), every number of `POST /api/lens` with `tuned: true` against the library's
`logit_lens(..., tuned=...)` on an independently loaded lens; a server without one answers 400."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from lenscope import HookedTransformer, save_model
from lenscope.errors import InputError, LenscopeError
from lenscope.lens import (
    GenerationLens,
    LensResult,
    TunedLens,
    lens_generation,
    load_tuned_lens,
    logit_lens,
    save_tuned_lens,
)
from lenscope.server import ServerConfig, ServerState, create_app

PROMPT = "for i in range("
WATCH = [" 10", " n"]


@pytest.fixture(scope="module")
def mini_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerState]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LENSCOPE_HOME", str(tmp_path_factory.mktemp("home")))
        logs: list[str] = []
        st = ServerState.load(ServerConfig("mini", workers=2), logs.append)
        yield st
        st.close()


@pytest.fixture(scope="module")
def mini_client(mini_state: ServerState) -> Iterator[TestClient]:
    with TestClient(create_app(mini_state), base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture(scope="module")
def shipped_lens(mini_state: ServerState) -> TunedLens:
    """The shipped lens opened by path, apart from the server's copy."""
    root = Path(__file__).resolve().parents[2]
    return load_tuned_lens(root / "assets" / "lenses" / "mini-tuned", mini_state.model)


def lens_post(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/api/lens", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def assert_matches(v: dict[str, Any], res: LensResult) -> None:
    """Every number of the server's view equals the library's result."""
    assert v["tokens"] == res.tokens and v["token_ids"] == res.token_ids
    assert v["boundaries"] == res.boundaries
    assert v["top_tokens"] == res.top_tokens
    for key, want in (
        ("top_probs", res.top_probs),
        ("entropy", res.entropy),
        ("kl", res.kl),
        ("next_prob", res.next_prob),
    ):
        torch.testing.assert_close(
            torch.tensor(v[key]), want.float(), atol=1e-6, rtol=1e-5, msg=key
        )
    assert v["next_rank"] == res.next_rank.tolist()
    assert res.watch_rank is not None and res.watch_prob is not None
    assert v["watch_rank"] == res.watch_rank.tolist()
    torch.testing.assert_close(
        torch.tensor(v["watch_prob"]), res.watch_prob.float(), atol=1e-6, rtol=1e-5
    )
    assert [w["id"] for w in v["watched"]] == [w.id for w in res.watched]


def test_model_info_names_the_shipped_tuned_lens(
    mini_client: TestClient, mini_state: ServerState
) -> None:
    from lenscope.lens import find_tuned_lens

    found = find_tuned_lens(mini_state.model)
    assert found is not None
    assert mini_client.get("/api/model").json()["tuned_lens"] == found.name == "mini-tuned"


def test_tuned_lens_route_is_the_librarys(
    mini_client: TestClient, mini_state: ServerState, shipped_lens: TunedLens
) -> None:
    model = mini_state.model
    ids = model.to_tokens(PROMPT)[0].tolist()
    v = lens_post(mini_client, prompt=PROMPT, k=4, watch=WATCH, tuned=True)
    want = logit_lens(model, ids, k=4, watch=WATCH, tuned=shipped_lens)
    assert v["lens"] == "tuned" and v["tuned_lens"] == "mini-tuned" and v["precision"] == "fp32"
    assert_matches(v, want)
    # the flag matters: the logit lens of the same prompt is another answer (but the same output)
    plain = lens_post(mini_client, prompt=PROMPT, k=4, watch=WATCH)
    assert plain["lens"] == "logit" and plain["tuned_lens"] is None
    assert_matches(plain, logit_lens(model, ids, k=4, watch=WATCH))
    assert plain["kl"][0] != v["kl"][0]
    assert plain["top_tokens"][-1] == v["top_tokens"][-1]


def test_tuned_lens_with_generation_and_bf16(
    mini_client: TestClient, mini_state: ServerState, shipped_lens: TunedLens
) -> None:
    model = mini_state.model
    ids = model.to_tokens(PROMPT)[0].tolist()
    v = lens_post(mini_client, prompt=ids, generate=3, watch=WATCH, tuned=True)
    gen: GenerationLens = lens_generation(model, ids, 3, k=5, watch=WATCH, tuned=shipped_lens)
    assert v["generated"] == gen.generated and v["n_prompt"] == gen.n_prompt
    assert_matches(v, gen.lens)
    v = lens_post(mini_client, prompt=ids, watch=WATCH, tuned=True, precision="bf16")
    assert v["precision"] == "bf16"
    assert_matches(
        v, logit_lens(model, ids, k=5, watch=WATCH, tuned=shipped_lens, precision="bf16")
    )


def test_tuned_lens_has_no_sublayers(mini_client: TestClient) -> None:
    r = mini_client.post("/api/lens", json={"prompt": PROMPT, "tuned": True, "sublayers": True})
    assert r.status_code == 400 and "sublayers" in r.json()["error"]


def test_no_tuned_lens_is_a_400_before_any_work(client: TestClient) -> None:
    """The tiny test server has no tuned lens: a clear one-line 400, nothing queued."""
    assert client.get("/api/model").json()["tuned_lens"] is None

    def heavy_done() -> int:
        lanes = client.get("/api/health").json()["lanes"]
        return int(next(x["completed"] for x in lanes if x["name"] == "heavy"))

    before = heavy_done()
    r = client.post("/api/lens", json={"prompt": "w1 w2", "tuned": True})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"] == "InputError" and "no tuned lens" in body["error"]
    assert "lenscope lens train-tuned tiny" in body["error"] and "\n" not in body["error"]
    assert heavy_done() == before
    assert client.post("/api/lens", json={"prompt": "w1 w2"}).status_code == 200
    assert heavy_done() == before + 1
    bad = client.post("/api/lens", json={"prompt": "w1", "precision": "fp16"})
    assert bad.status_code == 422


def test_startup_takes_the_models_own_lens_and_leaves_out_a_broken_one(
    tmp_path: Path, model: HookedTransformer, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("LENSCOPE_HOME", str(home))
    save_model(model, home / "models" / "tiny")
    lens = TunedLens.for_model(model)
    with torch.no_grad():
        lens.bias.normal_(generator=torch.Generator().manual_seed(0))
    dest = save_tuned_lens(lens, home / "lenses" / "tiny-tuned", "tiny")

    st = ServerState.load(ServerConfig("tiny"), lambda _: None)
    assert st.tuned is not None and st.tuned.name == "tiny-tuned"
    assert torch.equal(st.tuned.lens.bias, lens.bias.detach())
    st.close()

    st = ServerState.load(ServerConfig("tiny", auto=False), lambda _: None)
    assert st.tuned is None
    with pytest.raises(InputError, match="--no-auto"):
        st.need_tuned()
    st.close()

    (dest / "translators.safetensors").unlink()
    logs: list[str] = []
    st = ServerState.load(ServerConfig("tiny"), logs.append)
    assert st.tuned is None and any("tuned lens not used" in m for m in logs)
    st.close()

    # a named lens is used as given (even with --no-auto), and must open
    other = save_tuned_lens(TunedLens.for_model(model), tmp_path / "elsewhere" / "mine", "tiny")
    st = ServerState.load(ServerConfig("tiny", auto=False, tuned=str(other)), lambda _: None)
    assert st.tuned is not None and st.tuned.name == "mine"
    assert torch.equal(st.tuned.lens.bias, torch.zeros_like(lens.bias))
    st.close()
    with pytest.raises(LenscopeError):
        ServerState.load(ServerConfig("tiny", tuned=str(dest)), lambda _: None)
