"""The debugger routes return what the library returns, and their numbers match independent
computations on the model itself (plain forward passes with hand-written hooks)."""

from __future__ import annotations

import json
from typing import Any

import torch
from fastapi.testclient import TestClient

from lenscope import HookedTransformer
from lenscope.attribution.questions import AttentionScore, LogitDiff
from lenscope.server import ServerState
from tests.server.fixtures import PROMPT, QUESTION


def ids_of(model: HookedTransformer, text: str) -> list[int]:
    assert model.tokenizer is not None
    return model.tokenizer.encode(text, prepend_bos=model.cfg.default_prepend_bos)


def logit_diff(model: HookedTransformer, hooks: list[Any] | None = None) -> float:
    """logit(' w5') - logit(' w7') at the last position, from a plain hooked forward pass."""
    t = torch.tensor([ids_of(model, PROMPT)])
    with torch.no_grad():
        logits = model.run_with_hooks(t, fwd_hooks=hooks or [])[0, -1]
    a, b = model.to_single_token(" w5"), model.to_single_token(" w7")
    return float(logits[a] - logits[b])


def same(a: Any, b: Any) -> None:
    assert json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def test_why_is_the_library_answer_and_the_true_logit_difference(
    client: TestClient, state: ServerState, model: HookedTransformer
) -> None:
    r = client.post("/api/why", json={"prompt": PROMPT, "question": QUESTION, "top_k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    lib = state.debugger.why(PROMPT, LogitDiff(target=[" w5"], distractor=[" w7"]), top_k=5)
    same(body, lib.to_json())
    assert abs(body["value"] - logit_diff(model)) < 1e-4
    assert body["prompt"]["ids"] == ids_of(model, PROMPT)
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([body["prompt"]["ids"]]))[0, -1], -1)
    assert abs(body["candidates"][0]["prob"] - float(probs.max())) < 1e-5


def test_ablating_a_head_changes_the_value_as_a_zeroed_head_does(
    client: TestClient, model: HookedTransformer
) -> None:
    iv = {"interventions": [{"type": "ablate", "node": "L1.H2"}]}
    r = client.post("/api/why", json={"prompt": PROMPT, "question": QUESTION, "interventions": iv})
    assert r.status_code == 200, r.text

    def zero_head(z: torch.Tensor, hook: Any) -> torch.Tensor:
        z = z.clone()
        z[:, :, 2] = 0.0
        return z

    expected = logit_diff(model, [("blocks.1.attn.hook_z", zero_head)])
    assert abs(r.json()["value"] - expected) < 1e-4
    assert abs(expected - logit_diff(model)) > 1e-3  # the head matters: the test can fail
    assert r.json()["interventions"]["interventions"][0]["node"] == "L1.H2"


def test_measured_ablation_column_is_the_drop_when_that_node_is_ablated(
    client: TestClient,
) -> None:
    body = client.post("/api/why", json={"prompt": PROMPT, "question": QUESTION}).json()
    row = next(
        r
        for r in body["table"]["rows"]
        if r["ablation_effect"] is not None and r["granularity"] == "component"
    )
    iv = {"interventions": [{"type": "ablate", "node": row["node"]}]}
    after = client.post(
        "/api/why", json={"prompt": PROMPT, "question": QUESTION, "interventions": iv, "measure": 0}
    )
    assert abs((body["value"] - after.json()["value"]) - row["ablation_effect"]) < 1e-4


def test_batch_is_each_prompt_alone(client: TestClient) -> None:
    prompts = [PROMPT, "w3 w9 w3", "w1"]
    r = client.post("/api/why/batch", json={"prompts": prompts, "question": QUESTION, "top_k": 3})
    assert r.status_code == 200, r.text
    for p, res in zip(prompts, r.json()["results"], strict=True):
        one = client.post("/api/why", json={"prompt": p, "question": QUESTION, "top_k": 3}).json()
        assert abs(res["value"] - one["value"]) < 1e-4
        assert res["prompt"] == one["prompt"]


def test_kinds_keep_only_those_rows(client: TestClient) -> None:
    r = client.post("/api/why", json={"prompt": PROMPT, "question": QUESTION, "kinds": ["neuron"]})
    rows = r.json()["table"]["rows"]
    assert rows and {x["kind"] for x in rows} == {"neuron"}
    names = {x["node"] for x in rows}
    for rk in r.json()["table"]["rankings"]:
        assert set(rk["positive"]) <= names and set(rk["negative"]) <= names


def test_compare_sides_are_the_two_questions(client: TestClient, model: HookedTransformer) -> None:
    other = "w9 w8 w7 w6"
    body = {"question": QUESTION, "left": {"prompt": PROMPT}, "right": {"prompt": other}}
    r = client.post("/api/compare", json=body)
    assert r.status_code == 200, r.text
    c = r.json()
    left = client.post("/api/why", json={"prompt": PROMPT, "question": QUESTION}).json()["value"]
    right = client.post("/api/why", json={"prompt": other, "question": QUESTION}).json()["value"]
    assert abs(c["left"]["value"] - left) < 1e-4 and abs(c["right"]["value"] - right) < 1e-4
    assert abs(c["value_diff"] - (right - left)) < 1e-4


def test_trace_through_a_heads_key_is_the_library_trace(
    client: TestClient, state: ServerState
) -> None:
    r = client.post(
        "/api/trace", json={"prompt": PROMPT, "question": QUESTION, "path": ["L1.H2@8:k"]}
    )
    assert r.status_code == 200, r.text
    lib = state.debugger.trace(PROMPT, LogitDiff(target=[" w5"], distractor=[" w7"]), ["L1.H2@8:k"])
    same(r.json(), lib.to_json())
    assert r.json()["path"] == [{"node": "L1.H2@8", "via": "k"}]
    down = client.post(
        "/api/trace",
        json={"prompt": PROMPT, "question": QUESTION, "path": ["L0.N3"], "direction": "downstream"},
    )
    assert down.status_code == 200 and down.json()["direction"] == "downstream"


def test_attention_score_and_probability_are_the_models(
    client: TestClient, state: ServerState, model: HookedTransformer
) -> None:
    q = {"kind": "attention", "layer": 1, "head": 3, "key_pos": 2}
    r = client.post("/api/attention", json={"prompt": PROMPT, "question": q})
    assert r.status_code == 200, r.text
    a = r.json()
    _, cache = model.run_with_cache(torch.tensor([ids_of(model, PROMPT)]))
    last = len(a["prompt"]["ids"]) - 1
    assert abs(a["probability"] - float(cache["blocks.1.attn.hook_pattern"][0, 3, last, 2])) < 1e-5
    assert abs(a["score"] - float(cache["blocks.1.attn.hook_attn_scores"][0, 3, last, 2])) < 1e-4
    lib = state.debugger.attention(PROMPT, AttentionScore(layer=1, head=3, key_pos=2))
    same(a, lib.to_json())


def test_concurrent_tabs_never_see_each_others_interventions(client: TestClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sets = [None, ["L1.H2"], ["L0.H1", "L1.N3"], ["L0.N5@4"], ["L1.H0"], None]
    bodies = [
        {"prompt": PROMPT, "question": QUESTION, "measure": 0, "top_k": 3,
         "interventions": None if s is None else {"interventions": [{"type": "ablate", "node": n} for n in s]}}
        for s in sets
    ]  # fmt: skip
    alone = [client.post("/api/why", json=b).json()["value"] for b in bodies]
    assert len({round(v, 5) for v in alone}) >= 4  # the interventions do differ
    with ThreadPoolExecutor(6) as pool:
        for _ in range(3):
            got = list(
                pool.map(lambda b: client.post("/api/why", json=b).json()["value"], bodies * 2)
            )
            assert got == alone * 2
    plain = client.post("/api/why", json=bodies[0]).json()
    assert plain["interventions"] is None and plain["value"] == alone[0]
