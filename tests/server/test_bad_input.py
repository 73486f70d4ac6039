"""Bad input gets a clear 4xx JSON body and the server stays up; no name becomes a file path."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from lenscope.server import ServerState
from lenscope.server.config import MAX_BODY_BYTES, MAX_PROMPT_CHARS
from tests.server.fixtures import PROMPT, QUESTION


def error_of(r: Any, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "status", "type"} and body["status"] == status
    assert body["error"] and "\n" not in body["error"] and "Traceback" not in body["error"]
    return str(body["error"])


def why(client: TestClient, **kw: object) -> Any:
    return client.post("/api/why", json={"prompt": PROMPT, "question": QUESTION} | kw)


def test_oversized_prompts(client: TestClient) -> None:
    msg = error_of(why(client, prompt="w1 " * (MAX_PROMPT_CHARS // 3 + 1)), 422)
    assert msg.startswith("prompt")
    msg = error_of(why(client, prompt="w1 " * 30), 400)  # under the character bound, over n_ctx
    assert "31 tokens" in msg and "at most 24" in msg
    assert "at most" in error_of(client.post("/api/lens", json={"prompt": "w1 " * 30}), 400)
    msg = error_of(client.post("/api/nodes/L0.H1/activations", json={"text": "w2 " * 40}), 400)
    assert "shorten" in msg


def test_unknown_tokens_and_nodes(client: TestClient) -> None:
    q: dict[str, Any] = {"kind": "logit_diff", "target": ["w1 w2"], "distractor": [" w7"]}
    assert "not one token" in error_of(why(client, question=q), 400)
    q = {"kind": "logit_diff", "target": [99999], "distractor": [" w7"]}
    assert "vocabulary" in error_of(why(client, question=q), 400)
    iv = {"interventions": [{"type": "ablate", "node": "L9.H0"}]}
    assert "layer 9 does not exist" in error_of(why(client, interventions=iv), 400)
    iv = {"interventions": [{"type": "ablate", "node": "L0.X1"}]}
    assert "unknown node id" in error_of(why(client, interventions=iv), 422)
    assert "unknown node id" in error_of(client.get("/api/nodes/L0.Q9"), 400)
    assert "does not exist" in error_of(client.get("/api/nodes/L0.N999"), 400)
    path = {"prompt": PROMPT, "question": QUESTION, "path": ["L7.H1:k"]}
    assert "layer 7" in error_of(client.post("/api/trace", json=path), 400)
    q = {"kind": "attention", "layer": 1, "head": 0, "query_pos": 2, "key_pos": 5}  # fmt: skip
    assert "earlier keys" in error_of(
        client.post("/api/attention", json={"prompt": PROMPT, "question": q}), 400
    )
    assert "not a head" in error_of(
        client.get("/api/circuits/table", params={"head": "L0.N1"}), 400
    )


def test_malformed_json_wrong_types_huge_sizes(client: TestClient) -> None:
    r = client.post(
        "/api/why", content=b'{"prompt": "w1",', headers={"content-type": "application/json"}
    )
    assert "not valid JSON" in error_of(r, 422)
    assert error_of(why(client, top_k="many"), 422).startswith("top_k")
    assert "less than or equal to 50" in error_of(why(client, top_k=10**9), 422)
    assert error_of(why(client, question={"kind": "nope"}), 422).startswith("question")
    assert "required" in error_of(client.post("/api/why", json={"prompt": PROMPT}), 422)
    assert error_of(why(client, extra_field=1), 422).startswith("extra_field")
    assert "at most 8" in error_of(
        client.post("/api/why/batch", json={"prompts": ["w1"] * 9, "question": QUESTION}), 422
    )
    big = b'{"prompt": "' + b"w" * MAX_BODY_BYTES + b'"}'
    r = client.post("/api/why", content=big, headers={"content-type": "application/json"})
    assert "KiB" in error_of(r, 413)
    iv: dict[str, Any] = {"interventions": [{"type": "ablate", "node": "L0.H1"}] * 40}
    assert "at most 32" in error_of(why(client, interventions=iv), 400)
    iv = {
        "interventions": [
            {"type": "steer", "hook": "blocks.0.hook_resid_post", "vector": [1.0] * 5}
        ]
    }
    assert "d_model = 32" in error_of(why(client, interventions=iv), 400)
    q = {"kind": "logit_diff", "target": [" w1"] * 9, "distractor": [" w7"]}
    assert "at most 8" in error_of(why(client, question=q), 400)
    assert error_of(client.get("/api/summaries", params={"nodes": ",".join(["L0.H1"] * 65)}), 400)
    assert error_of(client.post("/api/markov/baby", json={"steps": 10**6}), 422).startswith("steps")
    assert "not a token id" in error_of(
        client.post("/api/markov/baby", json={"sequence": "1a01"}), 400
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/models/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/models/%2Fetc%2Fpasswd",
        "/api/nodes/..%2F..%2Fetc%2Fpasswd",
        "/api/nodes/L0.H1%2F..%2F..",
    ],
)
def test_path_like_names_never_reach_the_disk(
    client: TestClient, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lenscope.model.load as load

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("a request name was resolved on disk")

    monkeypatch.setattr(load, "resolve_model_path", refuse)
    monkeypatch.setattr(load, "load_model", refuse)
    r = client.get(path)
    assert 400 <= r.status_code < 500 and "root:" not in r.text
    error_of(r, r.status_code)


@pytest.mark.parametrize(
    "path",
    [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/assets/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/..%5c..%5cetc%5cpasswd",
    ],
)
def test_static_files_stay_inside_the_web_app(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert "root:" not in r.text
    assert r.status_code in (200, 404)  # the app's index page, or a JSON 404


def test_explainer_names_are_not_paths(client: TestClient) -> None:
    r = client.post("/api/nodes/L0.H1/explain", json={"explainer": "../../x"})
    assert error_of(r, 422).startswith("explainer")


def test_a_bug_is_a_json_500_and_the_server_stays_up(
    state: ServerState, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lenscope.server import create_app

    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("kaput")

    c = TestClient(create_app(state), base_url="http://127.0.0.1", raise_server_exceptions=False)
    monkeypatch.setattr(state.debugger, "why", boom)
    assert "kaput" in error_of(why(c), 500)
    monkeypatch.undo()
    assert why(c).status_code == 200


def test_unknown_endpoints_and_methods(client: TestClient) -> None:
    assert "no such endpoint" in error_of(client.get("/api/nope"), 404)
    assert "not allowed" in error_of(client.get("/api/why"), 405)
