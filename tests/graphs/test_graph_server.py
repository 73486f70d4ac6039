"""POST /api/graph and /api/graph/intervene, against the library and the hooked model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from fastapi.testclient import TestClient

from lenscope import HookedTransformer
from lenscope.graphs.build import GraphOptions, build_graph
from lenscope.graphs.neuronpedia import validate_neuronpedia
from lenscope.graphs.replacement import as_dictionaries
from lenscope.graphs.scores import graph_scores
from lenscope.server import ServerConfig, ServerState, create_app
from tests.attribution.factory import tokenized_model
from tests.graphs.helpers import random_clt, save_clt

PROMPT = "w1 w2 w3 w4 w5"


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, HookedTransformer, str]]:
    d = tmp_path_factory.mktemp("graph-server")
    home = d / "home"
    mp = pytest.MonkeyPatch()
    mp.setenv("LENSCOPE_HOME", str(home))
    model = tokenized_model(d / "tok")
    clt_dir = save_clt(random_clt(model), home / "transcoders" / "clt")
    state = ServerState(ServerConfig("tiny", workers=2), model)
    with TestClient(create_app(state), base_url="http://127.0.0.1") as c:
        yield c, model, str(clt_dir)
    state.close()
    mp.undo()


def test_graph_route_is_the_librarys_graph(
    setup: tuple[TestClient, HookedTransformer, str],
) -> None:
    client, model, clt = setup
    q = {"kind": "logit_diff", "target": ["w3"], "distractor": ["w4"]}
    r = client.post("/api/graph", json={"prompt": PROMPT, "transcoders": clt, "question": q})
    assert r.status_code == 200, r.text
    doc = r.json()
    validate_neuronpedia(doc)
    from lenscope.attribution.questions import LogitDiff
    from lenscope.sae.clt import load_cross_layer_transcoder

    dics = as_dictionaries(load_cross_layer_transcoder(clt))
    g = build_graph(
        model,
        PROMPT,
        dics,
        question=LogitDiff(target=["w3"], distractor=["w4"]),
        options=GraphOptions(max_feature_nodes=1024),
    )
    s = graph_scores(g)
    assert doc["scores"]["replacement"] == pytest.approx(s.replacement, abs=1e-5)
    assert doc["scores"]["completeness"] == pytest.approx(s.completeness, abs=1e-5)
    assert doc["lenscope"]["targets"] == [g.targets[0].label]
    logits = [n for n in doc["nodes"] if n["feature_type"] == "logit"]
    assert len(logits) == 1 and logits[0]["is_target_logit"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"node_threshold": 0}, 422),
        ({"edge_threshold": 1.5}, 422),
        ({"max_feature_nodes": 10**7}, 422),
        ({"question": {"kind": "logit", "token": 9999}}, 400),
        ({"transcoders": "/etc"}, 400),
    ],
)
def test_graph_route_refuses_bad_input(
    setup: tuple[TestClient, HookedTransformer, str], body: dict[str, object], status: int
) -> None:
    client, _, clt = setup
    r = client.post("/api/graph", json={"prompt": PROMPT, "transcoders": clt, **body})
    assert r.status_code == status, r.text


def test_intervene_ablates_in_the_real_model(
    setup: tuple[TestClient, HookedTransformer, str],
) -> None:
    client, model, clt = setup
    from lenscope.sae.clt import load_cross_layer_transcoder

    dics = as_dictionaries(load_cross_layer_transcoder(clt))
    toks = model.to_tokens(PROMPT)
    n = toks.shape[1]
    # the most active layer-1 feature at the last position
    store: dict[str, torch.Tensor] = {}
    with torch.no_grad(), model.hooks([(dics[1].hook_in, lambda x, h: store.update(x=x))]):
        model(toks)
    f = dics[1].latents(store["x"][0, -1])
    j = int(f.argmax())
    assert float(f[j]) > 0
    r = client.post(
        "/api/graph/intervene",
        json={
            "prompt": PROMPT,
            "transcoders": clt,
            "edits": [{"node_id": f"1_{j}_{n - 1}", "op": "ablate"}],
        },
    )
    assert r.status_code == 200, r.text
    res = r.json()
    # independent: remove the feature's write from MLP output 1 at the last position
    dec = dics[1].decoder("blocks.1.hook_mlp_out")

    def remove(y: torch.Tensor, _h: object) -> torch.Tensor:
        y = y.clone()
        y[0, -1] -= f[j] * dec[j]
        return y

    with torch.no_grad():
        before = model(toks)[0, -1].softmax(-1)
        with model.hooks([("blocks.1.hook_mlp_out", remove)]):
            after = model(toks)[0, -1].softmax(-1)
    for row in res["before"]:
        assert row["before"] == pytest.approx(float(before[row["id"]]), abs=1e-5)
        assert row["after"] == pytest.approx(float(after[row["id"]]), abs=1e-5)
    assert res["kl"] > 0
    bad = client.post(
        "/api/graph/intervene",
        json={
            "prompt": PROMPT,
            "transcoders": clt,
            "edits": [{"node_id": "9_0_0", "op": "ablate"}],
        },
    )
    assert bad.status_code == 400 and "layer 9" in bad.text
