"""Text that is not valid Unicode (a lone surrogate, `"\\ud800"` in JSON) and bodies that cannot be
read (not UTF-8, nested too deeply) are 422 naming the problem, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lenscope import HookedTransformer
from lenscope.server.validation import validation_message
from tests.server.fixtures import PROMPT, QUESTION, WORDS
from tests.server.test_bad_input import error_of

BAD = "w1 \ud800"  # json.dumps writes it as the escape a client sends: "w1 \ud800"
LOGIT_DIFF: dict[str, Any] = QUESTION
BASE: dict[str, Any] = {"prompt": PROMPT, "question": LOGIT_DIFF}
PATCH = {"type": "patch", "hook": "blocks.0.hook_resid_post", "source": BAD}
RESAMPLE = {"type": "ablate", "node": "L0.H1", "mode": "resample", "source": BAD}

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("/api/why", {**BASE, "prompt": BAD}, "prompt"),
    ("/api/why", {**BASE, "question": {**LOGIT_DIFF, "target": [BAD]}}, "question.target[0]"),
    (
        "/api/why",
        {**BASE, "question": {"kind": "logit_diff", "target": [" w5"], "distractor": [7, BAD]}},
        "question.distractor[1]",
    ),
    ("/api/why", {**BASE, "question": {"kind": "logit", "token": BAD}}, "question.token"),
    ("/api/why", {**BASE, "question": {"kind": "prob", "token": BAD}}, "question.token"),
    (
        "/api/why",
        {**BASE, "interventions": {"interventions": [], "reference": [PROMPT, BAD]}},
        "interventions.reference[1]",
    ),
    ("/api/why", {**BASE, "reference": [BAD]}, "reference[0]"),
    (
        "/api/why",
        {**BASE, "interventions": {"interventions": [PATCH]}},
        "interventions.interventions[0].source",
    ),
    (
        "/api/why",
        {**BASE, "interventions": {"interventions": [RESAMPLE]}},
        "interventions.interventions[0].source",
    ),
    ("/api/why/batch", {"prompts": [PROMPT, BAD], "question": LOGIT_DIFF}, "prompts[1]"),
    (
        "/api/why/batch",
        {"prompts": [PROMPT], "question": {"kind": "prob", "token": BAD}},
        "question.token",
    ),
    (
        "/api/why/batch",
        {"prompts": [PROMPT], "question": LOGIT_DIFF, "interventions": {"interventions": [PATCH]}},
        "interventions.interventions[0].source",
    ),
    (
        "/api/compare",
        {"question": LOGIT_DIFF, "left": {"prompt": PROMPT}, "right": {"prompt": BAD}},
        "right.prompt",
    ),
    (
        "/api/compare",
        {
            "question": LOGIT_DIFF,
            "left": {"prompt": PROMPT, "interventions": {"interventions": [RESAMPLE]}},
            "right": {"prompt": PROMPT},
        },
        "left.interventions.interventions[0].source",
    ),
    (
        "/api/compare",
        {
            "question": {**LOGIT_DIFF, "distractor": [BAD]},
            "left": {"prompt": PROMPT},
            "right": {"prompt": PROMPT},
        },
        "question.distractor[0]",
    ),
    ("/api/trace", {**BASE, "path": ["L1.H0"], "prompt": BAD}, "prompt"),
    (
        "/api/trace",
        {**BASE, "path": ["L1.H0"], "question": {"kind": "logit", "token": BAD}},
        "question.token",
    ),
    (
        "/api/trace",
        {**BASE, "path": ["L1.H0"], "interventions": {"interventions": [], "reference": [BAD]}},
        "interventions.reference[0]",
    ),
    ("/api/trace", {**BASE, "path": [BAD]}, "path[0]"),
    ("/api/lens", {"prompt": PROMPT, "watch": [BAD]}, "watch[0]"),
    ("/api/tokenize", {"text": BAD}, "text"),
]


def post_json(client: TestClient, url: str, body: dict[str, Any]) -> Any:
    raw = json.dumps(body)  # ASCII: the surrogate travels as its JSON escape
    assert "\\ud800" in raw
    return client.post(url, content=raw.encode(), headers={"content-type": "application/json"})


@pytest.mark.parametrize(("url", "body", "where"), CASES)
def test_a_lone_surrogate_is_a_422_naming_the_field(
    client: TestClient, url: str, body: dict[str, Any], where: str
) -> None:
    msg = error_of(post_json(client, url, body), 422)
    assert (
        msg
        == f"{where}: is not valid Unicode text: it holds a lone surrogate (U+D800) at character 3"
    )


def test_a_surrogate_in_a_key_is_refused_and_the_server_stays_up(client: TestClient) -> None:
    msg = error_of(post_json(client, "/api/why", {**BASE, "\ud800": 1}), 422)
    assert msg.startswith("a key: is not valid Unicode text")
    assert client.get("/api/health").status_code == 200


def test_valid_text_beyond_the_bmp_still_passes(
    client: TestClient, model: HookedTransformer
) -> None:
    """A surrogate *pair* in JSON is one character (an emoji): valid text, answered as usual
    (the word-level tokenizer reads it as its unknown token, id 1)."""
    raw = json.dumps({**BASE, "prompt": PROMPT + " \U0001f600"})
    assert "\\ud83d\\ude00" in raw
    r = client.post("/api/why", content=raw.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    ids = [*model.to_tokens(PROMPT)[0].tolist(), WORDS.index("[UNK]")]
    direct = client.post("/api/why", json={**BASE, "prompt": ids})
    assert r.json()["value"] == pytest.approx(direct.json()["value"])


def _raw(client: TestClient, content: bytes) -> Any:
    return client.post("/api/why", content=content, headers={"content-type": "application/json"})


def test_a_body_that_is_not_utf8_is_a_422(client: TestClient) -> None:
    body = b'{"prompt": "w1 \xff\xfe", "question": {"target": [" w5"], "distractor": [" w7"]}}'
    msg = error_of(_raw(client, body), 422)
    assert msg == (
        "the request body is not valid UTF-8 (byte 0xff at position 15); send JSON encoded as UTF-8"
    )


@pytest.mark.parametrize("depth", [100_000, 5_000])
def test_a_deeply_nested_body_is_a_422(client: TestClient, depth: int) -> None:
    body = b'{"prompt": ' + b"[" * depth + b"]" * depth + b', "question": {}}'
    msg = error_of(_raw(client, body), 422)
    assert msg == "the request body is JSON nested too deeply to read; no request nests that deep"
    assert client.get("/api/health").status_code == 200


def test_nesting_json_can_read_is_an_ordinary_schema_error(client: TestClient) -> None:
    body = b'{"prompt": ' + b"[" * 900 + b"]" * 900 + b', "question": {}}'
    msg = error_of(_raw(client, body), 422)
    assert msg.startswith("prompt") and "nested" not in msg


def test_the_validation_sentence_of_a_surrogate_has_no_prefix() -> None:
    """The message pydantic carries ('Value error, ...') reads as the sentence the client gets."""
    err = {"type": "value_error", "loc": ("body",), "msg": "Value error, prompt: is not valid"}
    assert validation_message([err], {}) == "prompt: is not valid"
