"""What a client reads when a request goes wrong: a 400 instead of a result full of nulls when the
interventions overflow the model, validation errors that name fields as the client wrote them, and
attention questions that take the position names the results use."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from lenscope import HookedTransformer
from lenscope.sae import SparseAutoencoder
from lenscope.server.config import MAX_PROMPT_CHARS
from lenscope.server.validation import field_path, validation_message
from tests.server.fixtures import PROMPT, QUESTION, SAE_HOOK
from tests.server.test_bad_input import error_of
from tests.server.test_debugger_routes import logit_diff

NONFINITE = "the interventions made the model's output non-finite (inf/NaN)"


def steer(coefficient: float) -> dict[str, Any]:
    item = {"type": "steer", "latent": "L0.resid_post.F3", "coefficient": coefficient}
    return {"interventions": [item]}


def adder(vec: torch.Tensor) -> Any:
    def fn(x: torch.Tensor, hook: Any) -> torch.Tensor:
        return x + vec

    return fn


def test_an_overflowing_steering_coefficient_is_a_400_on_every_route(
    client: TestClient, model: HookedTransformer, sae: SparseAutoencoder
) -> None:
    # independently: adding 1e30 times the latent's direction overflows a plain forward pass
    assert not math.isfinite(logit_diff(model, [(SAE_HOOK, adder(sae.W_dec[3].detach() * 1e30))]))
    huge = steer(1e30)
    body = {"prompt": PROMPT, "question": QUESTION, "interventions": huge}
    assert error_of(client.post("/api/why", json=body), 400).startswith(NONFINITE)
    batch = {"prompts": [PROMPT, "w1 w2"], "question": QUESTION, "interventions": huge}
    assert NONFINITE in error_of(client.post("/api/why/batch", json=batch), 400)
    sides = {"left": {"prompt": PROMPT}, "right": {"prompt": PROMPT, "interventions": huge}}
    cmp = client.post("/api/compare", json={"question": QUESTION} | sides)
    assert NONFINITE in error_of(cmp, 400)
    trace = {"prompt": PROMPT, "question": QUESTION, "path": ["L1.H2"], "interventions": huge}
    assert NONFINITE in error_of(client.post("/api/trace", json=trace), 400)
    q = {"kind": "attention", "layer": 1, "head": 2, "key_pos": 1}
    att = client.post(
        "/api/attention", json={"prompt": PROMPT, "question": q, "interventions": huge}
    )
    assert "made the attention score non-finite" in error_of(att, 400)


def test_a_large_finite_steer_still_answers_exactly(
    client: TestClient, model: HookedTransformer, sae: SparseAutoencoder
) -> None:
    want = logit_diff(model, [(SAE_HOOK, adder(sae.W_dec[3].detach() * 1e4))])
    body = {"prompt": PROMPT, "question": QUESTION, "interventions": steer(1e4), "measure": 0}
    r = client.post("/api/why", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["value"] == pytest.approx(want, abs=1e-3)
    assert all(c["logit"] is not None for c in r.json()["candidates"])


def why(client: TestClient, **kw: Any) -> str:
    body = {"prompt": PROMPT, "question": QUESTION} | kw
    return error_of(client.post("/api/why", json=body), 422)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"prompt": 5}, "prompt: Input should be a valid string; Input should be a valid list"),
        (
            {"prompt": "w" * 100_000},
            f"prompt: String should have at most {MAX_PROMPT_CHARS} characters",
        ),
        (
            {"question": {"kind": "logit_diff", "target": [None], "distractor": [" w7"]}},
            "question.target[0]: Input should be a valid string; Input should be a valid integer",
        ),
        (
            {"question": {"kind": "nope"}},
            "question: 'nope' is not one of the expected kinds: "
            "'logit_diff', 'logit', 'prob', 'attention'",
        ),
        (
            {"interventions": {"interventions": [{"node": "L0.H1"}]}},
            "interventions.interventions[0]: the 'type' field is required to tell which kind "
            "this is",
        ),
        (
            {"interventions": {"interventions": [{"type": "ablate"}]}},
            "interventions.interventions[0].node: this field is required",
        ),
        (
            {"interventions": {"interventions": [{"type": "steer", "coefficient": 1.0}]}},
            "interventions.interventions[0]: steer needs exactly one of vector or latent",
        ),
        ({"reference": [5]}, "reference[0]: Input should be a valid string; "),
        ({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}, "a: Extra inputs are not permitted; "),
    ],
)
def test_validation_errors_name_fields_as_sent(
    client: TestClient, body: dict[str, Any], message: str
) -> None:
    got = why(client, **body)
    assert got.startswith(message), got
    for internal in ("constrained", "function-", "list[", "_kind()", "logit_diff.", "Value error"):
        assert internal not in got.replace("'logit_diff'", "")


def test_problems_are_deduplicated_and_at_most_three_are_shown(client: TestClient) -> None:
    got = why(client, a=1, b=2, c=3, d=4, e=5)
    assert got == (
        "a: Extra inputs are not permitted; b: Extra inputs are not permitted; "
        "c: Extra inputs are not permitted (and 2 more problems)"
    )
    bad = {"type": "steer", "latent": "x", "coefficient": "a"}
    got = why(client, interventions={"interventions": [bad]})
    assert got.startswith("interventions.interventions[0].latent: unknown node id 'x'")
    assert "; interventions.interventions[0].coefficient: Input should be a valid number" in got
    # a list prompt with a bad id: the union's "should be a string" is noise
    body = {"question": QUESTION, "left": {"prompt": [1, "x"]}, "right": {}}
    assert error_of(client.post("/api/compare", json=body), 422) == (
        "left.prompt[1]: Input should be a valid integer, unable to parse string as an integer; "
        "right.prompt: this field is required"
    )
    # the same problem at one place is said once
    errs = [{"type": "string_type", "loc": ("body", "prompt", "str"), "msg": "m"}] * 2
    assert validation_message(errs, {"prompt": 1}) == "prompt: m"


def test_field_paths_without_a_body() -> None:
    assert field_path(("query", "k")) == "k"
    assert field_path(("query", "tokens", 0)) == "tokens[0]"
    assert field_path(("body", "prompt", "constrained-str")) == "prompt"
    assert field_path(("body", "question", "function-after[_check(), str]"), None) == "question"
    assert field_path(("body", "a", "b"), {"a": {}}, missing=True) == "a.b"


def test_attention_takes_either_position_spelling(
    client: TestClient, model: HookedTransformer
) -> None:
    n = len(model.to_tokens(PROMPT)[0])
    short = {"kind": "attention", "layer": 1, "head": 2, "key_pos": 1}
    long = {"kind": "attention", "layer": 1, "head": 2, "key_position": 1, "query_position": -1}
    a = client.post("/api/attention", json={"prompt": PROMPT, "question": short, "top_k": 3})
    b = client.post("/api/attention", json={"prompt": PROMPT, "question": long, "top_k": 3})
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert a.json() == b.json()
    assert a.json()["description"] == f"attention score L1.H2 query {n - 1} -> key 1"
    assert a.json()["query_position"] == n - 1
    both = short | {"key_position": 1}
    r = client.post("/api/attention", json={"prompt": PROMPT, "question": both})
    assert error_of(r, 422) == "question: give key_pos or key_position (the same field), not both"
    why_q = client.post("/api/why", json={"prompt": PROMPT, "question": long, "measure": 0})
    assert why_q.status_code == 200, why_q.text
    assert why_q.json()["description"].endswith(f"query {n - 1} -> key 1")


def test_mean_ablation_without_references_says_where_they_go(client: TestClient) -> None:
    iv = {"interventions": [{"type": "ablate", "node": "L0.H1", "mode": "mean"}]}
    body = {"prompt": PROMPT, "question": QUESTION, "interventions": iv}
    msg = error_of(client.post("/api/why", json=body), 400)
    assert "`reference`" in msg and "InterventionSet" not in msg


def test_a_downstream_trace_of_two_nodes_names_no_cli_flag(client: TestClient) -> None:
    body = {"prompt": PROMPT, "question": QUESTION, "path": ["L0.H1", "L1.H2"]}
    r = client.post("/api/trace", json=body | {"direction": "downstream"})
    assert error_of(r, 400) == "a downstream trace starts from one node; give exactly one (got 2)"
