"""Model info, tokenizing, lens, circuits and Markov routes against the library and the model."""

from __future__ import annotations

import math
from typing import Any

import torch
from fastapi.testclient import TestClient

from lenscope import HookedTransformer
from lenscope.circuits import circuit_weights, composition_scores, full_ov, head_scores
from lenscope.markov import transition_matrix
from lenscope.server import ServerState
from lenscope.server.config import MAX_TOP_K
from tests.server.fixtures import PROMPT


def test_model_info_describes_the_served_model(
    client: TestClient, model: HookedTransformer
) -> None:
    info = client.get("/api/model").json()
    assert info["name"] == "tiny"
    assert info["n_params"] == sum(p.numel() for p in model.parameters())
    assert info["config"]["d_model"] == 32 and info["config"]["n_layers"] == 2
    assert info["node_kinds"] == ["head", "neuron", "embed", "pos", "latent"]
    assert info["saes"] == [
        {
            "name": "tiny-sae",
            "hook": "blocks.0.hook_resid_post",
            "d_sae": 16,
            "node_prefix": "L0.resid_post",
        }
    ]
    assert info["records"]["available"] and info["records"]["n_nodes"] == 2 * 32 + 2 * 4 + 16
    assert info["limits"]["max_top_k"] == MAX_TOP_K
    assert info["limits"]["max_prompt_tokens"] == model.cfg.n_ctx
    assert client.get("/api/models/tiny").json() == info


def test_tokenize_is_the_tokenizer(client: TestClient, model: HookedTransformer) -> None:
    r = client.post("/api/tokenize", json={"text": "w1 w2 zz"}).json()
    assert model.tokenizer is not None
    assert r["ids"] == model.tokenizer.encode("w1 w2 zz", prepend_bos=True)
    assert r["tokens"] == model.tokenizer.str_tokens(r["ids"])


def test_health_reports_the_lanes(client: TestClient) -> None:
    h = client.get("/api/health").json()
    assert h["status"] == "ok" and h["model"] == "tiny"
    assert [x["name"] for x in h["lanes"]] == ["heavy", "light"]


def test_lens_last_row_is_the_models_own_prediction(
    client: TestClient, model: HookedTransformer
) -> None:
    r = client.post("/api/lens", json={"prompt": PROMPT, "k": 3, "watch": [" w5", " w7"]})
    assert r.status_code == 200, r.text
    v = r.json()
    ids = v["token_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0]
    probs = logits.softmax(-1)
    assert model.tokenizer is not None
    assert v["boundaries"] == ["embed", "L0.post", "L1.post"]
    for p in range(len(ids)):
        top = probs[p].topk(3)
        assert [model.tokenizer.decode([i]) for i in top.indices.tolist()] == v["top_tokens"][-1][p]
        assert (
            max(abs(a - b) for a, b in zip(v["top_probs"][-1][p], top.values.tolist(), strict=True))
            < 1e-5
        )
        w5 = model.to_single_token(" w5")
        rank = int((logits[p] > logits[p, w5]).sum()) + 1
        assert v["watch_rank"][-1][p][0] == rank
    assert all(abs(k) < 1e-5 for k in v["kl"][-1])  # the last boundary is the output itself


def test_lens_with_generation_appends_greedy_tokens(
    client: TestClient, model: HookedTransformer
) -> None:
    v = client.post("/api/lens", json={"prompt": "w1 w2", "generate": 3}).json()
    assert v["n_prompt"] == 3 and len(v["generated"]) == 3
    ids = v["token_ids"]
    with torch.no_grad():
        for t in range(3, 6):
            assert int(model(torch.tensor([ids[:t]]))[0, -1].argmax()) == ids[t]


def _grid(t: torch.Tensor) -> list[list[float | None]]:
    L, H = t.shape[:2]
    return [[None if math.isnan(x) else x for x in row] for row in t.reshape(L * H, L * H).tolist()]


def test_circuits_are_the_weights_scores(client: TestClient, model: HookedTransformer) -> None:
    r = client.get("/api/circuits")
    assert r.status_code == 200, r.text
    c = r.json()
    cw = circuit_weights(model)
    for comp in c["composition"]:
        want = _grid(composition_scores(cw, comp["mode"]).scores)
        got = comp["scores"]
        for a, b in zip(got, want, strict=True):
            for x, y in zip(a, b, strict=True):
                assert (x is None and y is None) or abs(x - y) < 1e-5
    hs = head_scores(model)
    assert c["scores"]["induction"] == hs.induction
    assert len(c["patterns"]) == 2 and len(c["patterns"][0]) == 4
    for row in c["patterns"][1][0]:
        assert abs(sum(row) - 1) < 1e-4
    t = client.get(
        "/api/circuits/table", params={"kind": "ov", "head": "L1.H2", "tokens": [" w3"], "k": 2}
    )
    assert t.status_code == 200, t.text
    row = t.json()["rows"][0]
    w3 = model.to_single_token(" w3")
    assert row["token"] == w3 and len(row["top"]) == 2
    full = full_ov(cw, 1, 2).AB  # the whole vocab x vocab circuit, formed densely
    assert abs(row["top"][0]["score"] - float(full[w3].max())) < 1e-4


def test_markov_of_a_tiny_vocabulary_model_and_the_baby_gpt(
    client: TestClient, state: ServerState
) -> None:
    r = client.get("/api/markov")
    assert r.status_code == 400 and "too big" in r.json()["error"]
    b = client.post("/api/markov/baby", json={"sequence": "111101111011110", "steps": 5, "seed": 3})
    assert b.status_code == 200, b.text
    v = b.json()
    from lenscope.train.baby import BabySettings, train_baby

    run = train_baby([int(c) for c in "111101111011110"], BabySettings(steps=5, seed=3))
    want = transition_matrix(run.model, 2, 3)
    got = v["chains"][1]["next_token_probs"]
    assert (
        max(
            abs(a - b)
            for r1, r2 in zip(got, want.next_token_probs.tolist(), strict=True)
            for a, b in zip(r1, r2, strict=True)
        )
        < 1e-6
    )
    assert v["chains"][0]["svg"] is None or v["chains"][0]["svg"].lstrip().startswith("<?xml")
    assert v["chains"][1]["seen"] == [False, False, False, True, False, True, True, True]


def test_markov_of_a_model_small_enough(tmp_path: Any) -> None:
    from lenscope import ModelConfig
    from lenscope.server import ServerConfig, create_app

    m = HookedTransformer(
        ModelConfig(n_layers=1, d_model=8, n_heads=2, d_vocab=3, n_ctx=2, attn_only=True)
    )
    st = ServerState(ServerConfig("three"), m)
    with TestClient(create_app(st), base_url="http://127.0.0.1") as c:
        v = c.get("/api/markov").json()
        assert c.get("/api/model").json()["markov"] is True
    st.close()
    want = transition_matrix(m, 3, 2)
    assert v["chains"][0]["states"] == want.states
    assert v["chains"][0]["next_token_probs"] == want.next_token_probs.tolist()
