"""GET /api/model lists every dictionary whose latents are nodes of the server: the spliced SAE,
and a transcoder set and a cross-layer transcoder harvested into the records (with their node
prefixes, sizes and hooks, checked against the dictionaries themselves), and the expert count of a
mixture-of-experts model; the transcoder features' node pages answer, experts have none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lenscope import HookedTransformer
from lenscope.model import ModelConfig
from lenscope.records import HarvestConfig, Records, harvest
from lenscope.server import ServerConfig, ServerState, create_app
from lenscope.server.state import NamedSAE
from tests.sae.tc_helpers import random_set
from tests.server.fixtures import SAE_HOOK, VOCAB, corpus, tiny_model, tiny_sae, tokenizer

CFG = HarvestConfig(
    n_tokens=512, ctx=16, batch_rows=8, shard_rows=32, top_k=4, random_k=2,
    quantile_levels=(0.5,), per_quantile=2, before=3, after=2, hist_bins=8,
    calib_rows=8, effects_k=3, effect_sources=8, mlp=False, heads=False,
)  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d = tmp_path_factory.mktemp("dicts")
    model = tiny_model(d / "tok")
    sae = tiny_sae()
    tcs = random_set(model, d_sae=10).dictionaries()
    clts = random_set(model, d_sae=6, cross_layer=True, seed=3).dictionaries()
    docs = corpus(d / "corpus")
    harvest(
        model, d / "rec", saes=[sae, *tcs, *clts], config=CFG, corpus=docs, progress=False,
        log=lambda _: None,
    )  # fmt: skip
    state = ServerState(
        ServerConfig("tiny", workers=2),
        model,
        [NamedSAE("tiny-sae", sae, SAE_HOOK, sae.cfg.d_sae)],
        Records(d / "rec", model),
    )
    with TestClient(create_app(state), base_url="http://127.0.0.1") as client:
        yield {"client": client, "tcs": tcs, "clts": clts, "model": model}
    state.close()


def test_model_lists_the_sae_and_the_transcoders_with_records(served: dict[str, Any]) -> None:
    info = served["client"].get("/api/model").json()
    got = {x["node_prefix"]: x for x in info["dictionaries"]}
    want = {"L0.resid_post"} | {f"L{i}.transcoder" for i in (0, 1)} | {f"L{i}.clt" for i in (0, 1)}
    assert set(got) == want
    assert len(info["dictionaries"]) == len(want)  # the spliced SAE with records is one entry
    sae = got["L0.resid_post"]
    assert sae == {
        "name": "tiny-sae", "kind": "sae", "node_prefix": "L0.resid_post", "key": SAE_HOOK,
        "d_sae": 16, "hook_in": SAE_HOOK, "hooks_out": [SAE_HOOK], "spliced": True,
        "records": True,
    }  # fmt: skip
    for kind, dics in (("transcoder", served["tcs"]), ("clt", served["clts"])):
        for layer, dic in enumerate(dics):
            x = got[f"L{layer}.{kind}"]
            assert x["kind"] == kind
            assert x["key"] == dic.node_key == f"blocks.{layer}.{kind}"
            assert x["d_sae"] == dic.d_sae
            assert x["hook_in"] == dic.hook_in
            assert x["hooks_out"] == list(dic.hooks_out)
            assert (x["spliced"], x["records"]) == (False, True)
    assert got["L0.clt"]["hooks_out"] == ["blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out"]
    # the existing fields are as before: `saes` holds the spliced SAE only
    assert [s["node_prefix"] for s in info["saes"]] == ["L0.resid_post"]
    assert info["n_experts"] == 0


def test_transcoder_feature_pages_answer(served: dict[str, Any]) -> None:
    client = served["client"]
    for nid in ("L0.transcoder.F3", "L1.transcoder.F9", "L1.clt.F5"):
        got = client.get(f"/api/nodes/{nid}")
        assert got.status_code == 200, got.text
        assert got.json()["node_id"] == nid
        assert got.json()["top"]
    assert client.get("/api/nodes/L0.transcoder.F10").status_code in (400, 404)
    assert client.get("/api/nodes/L2.transcoder.F0").status_code == 400


@pytest.mark.parametrize("shared", [0, 4])
def test_moe_model_reports_its_experts_and_experts_have_no_page(
    tmp_path: Path, shared: int
) -> None:
    tok = tokenizer(tmp_path / "tok")
    cfg = ModelConfig(
        n_layers=2, d_model=16, n_heads=2, d_vocab=VOCAB, n_ctx=16, d_mlp=8,
        num_experts=3, experts_per_token=2, gated_mlp=True, d_mlp_shared=shared, name="tinymoe",
    )  # fmt: skip
    model = HookedTransformer(cfg, tok)
    state = ServerState(ServerConfig("tinymoe", workers=2), model, [], None)
    with TestClient(create_app(state), base_url="http://127.0.0.1") as client:
        info = client.get("/api/model").json()
        # a shared expert (Qwen2-MoE) is node L.E3, the last
        assert info["n_experts"] == info["config"]["num_experts"] + (1 if shared else 0)
        assert info["n_experts"] == (4 if shared else 3)
        assert "expert" in info["node_kinds"] and info["dictionaries"] == []
        got = client.get("/api/nodes/L0.E1")
        assert got.status_code == 400
        assert "node pages cover" in got.json()["error"]
    state.close()
