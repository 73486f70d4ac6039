"""The LLM explainer against a local OpenAI-compatible server: answers, cache, and failures."""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lenscope.explain import LLMConfig, LLMExplainer, explain_records
from lenscope.explain.base import split_examples
from lenscope.explain.llm import discretize
from lenscope.explain.prompts import parse_simulation
from lenscope.records import Records
from tests.explain.fake_llm import KEY, FakeLLM

NODES = ["L0.H1", "L1.N7", "L1.N30"]


@pytest.fixture
def recs(records_dir: Path, tmp_path: Path) -> Iterator[Records]:
    shutil.copytree(records_dir, tmp_path / "rec")
    r = Records(tmp_path / "rec")
    yield r
    r.close()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[FakeLLM]:
    s = FakeLLM(getattr(request, "param", "ok"))
    yield s
    s.close()


def config(url: str, tmp: Path, **kw: object) -> LLMConfig:
    base: dict[str, object] = dict(timeout=5.0, retries=1, backoff=0.01, cache_dir=tmp / "cache")
    base.update(kw)
    return LLMConfig(url, "fake-model", KEY, **base)  # type: ignore[arg-type]


def test_scores_are_the_correlation_of_the_llm_simulation(
    recs: Records, server: FakeLLM, tmp_path: Path
) -> None:
    s = explain_records(recs, LLMExplainer(config(server.url, tmp_path)), NODES, progress=False)
    assert (s.ok, s.failed) == (3, 0)
    for nid in NODES:
        rec = recs.node(nid)
        (x,) = rec.explanations
        assert x.model == "fake-model" and x.explainer == "llm"
        target = re.fullmatch(r"the token (.+) \(and nothing else\)\.", x.text)
        assert target is not None
        # the fake LLM named the explanation set's top-scaled token
        top = [e for e in split_examples(rec).explain if e.set == "top"][:6]
        pairs = [
            (t, a)
            for e in top
            for t, a in zip(e.tokens, discretize(e.acts, rec.stats.max), strict=True)
        ]
        assert target.group(1) == max(pairs, key=lambda p: p[1])[0]
        held = split_examples(rec).heldout
        truth = np.concatenate([e.acts for e in held])
        sim = np.array([10.0 if t == target.group(1) else 0.0 for e in held for t in e.tokens])
        want = 0.0 if sim.std() == 0 else np.corrcoef(truth, sim)[0, 1]
        assert x.score == pytest.approx(want, abs=1e-9)
        assert x.n_tokens == truth.size
    # the cache answers a second run without a single request
    n = len(server.requests)
    explain_records(recs, LLMExplainer(config(server.url, tmp_path)), NODES, progress=False)
    assert len(server.requests) == n


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("mode", "kw", "needle", "max_requests"),
    [
        ("down", {}, "cannot connect", 0),
        ("slow", {"timeout": 0.2, "retries": 0}, "no answer within", 3),
        ("garbage", {}, "not a chat completion", 6),
        ("bad_sim", {}, "does not list", 6),
        ("badkey", {}, "HTTP 401", 3),
    ],
)
def test_endpoint_failures_are_recorded_not_raised(
    recs: Records, tmp_path: Path, mode: str, kw: dict[str, object], needle: str, max_requests: int
) -> None:
    server = FakeLLM("ok" if mode in ("down", "badkey") else mode)
    url = f"http://127.0.0.1:{free_port()}/v1" if mode == "down" else server.url
    cfg = config(url, tmp_path, **kw)
    if mode == "badkey":
        cfg.api_key = "wrong"
    try:
        s = explain_records(recs, LLMExplainer(cfg), NODES, progress=False)
    finally:
        server.close()
    assert (s.ok, s.failed) == (0, 3)
    assert needle in s.first_error
    assert len(server.requests) <= max_requests * (1 if mode != "bad_sim" else 4)
    for nid in NODES:
        rec = recs.node(nid)  # the records are intact and the failure is recorded
        (x,) = rec.explanations
        assert x.status == "failed" and needle in x.error and x.score is None
        if mode == "bad_sim":
            assert x.text.startswith("the token")  # the explanation itself is kept


def test_a_500_is_retried(recs: Records, tmp_path: Path) -> None:
    server = FakeLLM("flaky")
    try:
        s = explain_records(
            recs, LLMExplainer(config(server.url, tmp_path)), NODES[:1], progress=False
        )
    finally:
        server.close()
    assert (s.ok, s.failed) == (1, 0)


def test_parse_simulation_rejects_garbage() -> None:
    assert parse_simulation("<start>\na\t3\nb\t10\n<end>", 2) == [3.0, 10.0]
    assert parse_simulation("a\t3\nb\t12", 2) == [3.0, 10.0]
    assert parse_simulation("<start>\na\t3\n<end>", 2) is None
    assert parse_simulation("<start>\na\tthree\nb\t1\n<end>", 2) is None
