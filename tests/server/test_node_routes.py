"""Node pages: records, explanations generated and cached, activations on the user's text."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from fastapi.testclient import TestClient

from lenscope import HookedTransformer
from lenscope.explain import OfflineExplainer, explain_node
from lenscope.records import Records, most_active
from lenscope.sae import SparseAutoencoder
from lenscope.server import ServerState

TEXT = "w4 w9 w4 w2 w11 w4"


def as_json(x: Any) -> Any:
    return json.loads(json.dumps(dataclasses.asdict(x)))


def test_record_is_the_records_own(client: TestClient, recs: Records) -> None:
    for node in ("L1.N3", "L0.H1", "L0.resid_post.F2"):
        r = client.get(f"/api/nodes/{node}")
        assert r.status_code == 200, r.text
        assert r.json() == as_json(recs.node(node))
    assert client.get("/api/nodes/l0.h1").json()["node_id"] == "L0.H1"  # canonical spelling


def test_explanation_is_generated_scored_and_cached(client: TestClient, recs: Records) -> None:
    stored = client.post("/api/nodes/L0.H1/explain", json={}).json()
    assert stored == as_json(recs.node("L0.H1").explanations[0])  # explained at harvest time
    want = as_json(explain_node(OfflineExplainer(), recs.node("L1.N7")))
    first = client.post("/api/nodes/L1.N7/explain", json={})
    assert first.status_code == 200, first.text
    assert first.json() == want and first.json()["score"] is not None
    again = client.post("/api/nodes/L1.N7/explain", json={})
    assert again.json() == want
    rec = client.get("/api/nodes/L1.N7").json()
    assert [e["explainer"] for e in rec["explanations"]] == ["offline"]  # the cached one joins


def test_summaries_show_explanations_and_top_tokens(client: TestClient, recs: Records) -> None:
    r = client.get("/api/summaries", params={"nodes": "L0.H1@3,L1.N3,embed,L0.N0"})
    assert r.status_code == 200, r.text
    nodes = r.json()["nodes"]
    assert set(nodes) == {"L0.H1", "L1.N3", "L0.N0"}  # embed has no record
    e = recs.node("L1.N3").explanations[0]
    assert nodes["L1.N3"]["explanation"]["text"] == e.text
    top = recs.node("L0.H1").top
    assert nodes["L0.H1"]["top_tokens"] == list(dict.fromkeys(x.tokens[x.center] for x in top))[:6]
    boosts = recs.node("L0.H1").boosts
    assert nodes["L0.H1"]["boosts"] == list(dict.fromkeys(b.token for b in boosts))[:6]


def _tokens(model: HookedTransformer) -> torch.Tensor:
    assert model.tokenizer is not None
    return torch.tensor([model.tokenizer.encode(TEXT, prepend_bos=True)])


def test_neuron_activations_are_the_mlp_outputs(
    client: TestClient, model: HookedTransformer
) -> None:
    r = client.post("/api/nodes/L1.N3/activations", json={"text": TEXT})
    assert r.status_code == 200, r.text
    _, cache = model.run_with_cache(_tokens(model))
    want = cache["blocks.1.mlp.hook_post"][0, :, 3]
    assert torch.allclose(torch.tensor(r.json()["acts"]), want.float(), atol=1e-5)
    assert r.json()["max_over_records"] is not None


def test_head_activations_are_write_norms_with_the_pattern(
    client: TestClient, model: HookedTransformer
) -> None:
    r = client.post("/api/nodes/L1.H2/activations", json={"text": TEXT}).json()
    _, cache = model.run_with_cache(_tokens(model))
    z = cache["blocks.1.attn.hook_z"][0, :, 2]  # [pos, d_head]
    want = (z @ model.W_O[1, 2]).norm(dim=-1)
    assert torch.allclose(torch.tensor(r["acts"]), want.float(), atol=1e-4)
    pat = cache["blocks.1.attn.hook_pattern"][0, 2]
    assert torch.allclose(torch.tensor(r["pattern"]), pat.float(), atol=1e-6)


def test_latent_activations_are_the_sae_codes(
    client: TestClient, model: HookedTransformer, sae: SparseAutoencoder
) -> None:
    r = client.post("/api/nodes/L0.resid_post.F5/activations", json={"text": TEXT}).json()
    _, cache = model.run_with_cache(_tokens(model))
    with torch.no_grad():
        want = sae.encode(cache["blocks.0.hook_resid_post"][0])[:, 5]
    assert torch.allclose(torch.tensor(r["acts"]), want.float(), atol=1e-5)


def test_search_and_most_active_are_the_libraries(
    client: TestClient, recs: Records, model: HookedTransformer, sae: SparseAutoencoder
) -> None:
    got = client.get("/api/search", params={"token": "w4", "limit": 5}).json()
    assert got == [dataclasses.asdict(h) for h in recs.search_tokens("w4", "top", 5)]
    act = client.post("/api/active", json={"text": TEXT, "limit": 7}).json()
    want = most_active(recs, model, _tokens(model), [sae], 7)
    assert [a["node_id"] for a in act] == [a.node_id for a in want]


def test_node_pages_without_records_say_how_to_get_them(model: HookedTransformer) -> None:
    from lenscope.server import ServerConfig, create_app

    st = ServerState(ServerConfig("tiny"), model, records_note="")
    with TestClient(create_app(st), base_url="http://127.0.0.1") as c:
        r = c.get("/api/nodes/L0.H1")
        assert r.status_code == 404 and "lenscope harvest tiny" in r.json()["error"]
        assert c.get("/api/summaries", params={"nodes": "L0.H1"}).json() == {"nodes": {}}
        assert c.post("/api/nodes/L0.H1/activations", json={"text": TEXT}).status_code == 200
    st.close()


def test_latent_records_read_without_their_sae(
    model: HookedTransformer, records_dir: Path, recs: Records
) -> None:
    from lenscope.server import ServerConfig, create_app

    st = ServerState(ServerConfig("tiny"), model, [], Records(records_dir, model))
    with TestClient(create_app(st), base_url="http://127.0.0.1") as c:
        r = c.get("/api/nodes/L0.resid_post.F2")
        assert r.status_code == 200 and r.json() == as_json(recs.node("L0.resid_post.F2"))
        run = c.post("/api/nodes/L0.resid_post.F2/activations", json={"text": TEXT})
        assert run.status_code == 400 and "no SAE" in run.json()["error"]
    st.close()
