"""The LLM explainer from the server, against a local OpenAI-compatible endpoint (the explain
tests' fake): explanations equal the library's, the key never leaves the server, an endpoint that
is down, slow or answers garbage gives a recorded failed explanation (never a 500), and a slow
endpoint never holds up the node pages."""

from __future__ import annotations

import dataclasses
import json
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from lenscope import HookedTransformer, save_model
from lenscope.explain import LLMConfig, LLMExplainer, explain_node
from lenscope.records import Records
from lenscope.sae import SparseAutoencoder
from lenscope.server import ServerConfig, ServerState, create_app
from lenscope.server.config import LLMSettings
from lenscope.server.state import NamedSAE
from tests.explain.fake_llm import KEY, FakeLLM
from tests.server.fixtures import SAE_HOOK
from tests.server.test_live_server import start_server

KEY_ENV = "LENSCOPE_TEST_LLM_KEY"


def as_json(x: Any) -> Any:
    return json.loads(json.dumps(dataclasses.asdict(x)))


def llm_server(
    model: HookedTransformer,
    sae: SparseAutoencoder,
    records_dir: Path,
    settings: LLMSettings,
) -> tuple[ServerState, TestClient]:
    st = ServerState(
        ServerConfig("tiny", workers=2, llm=settings),
        model,
        [NamedSAE("tiny-sae", sae, SAE_HOOK, sae.cfg.d_sae)],
        Records(records_dir, model),
    )
    return st, TestClient(create_app(st), base_url="http://127.0.0.1")


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakeLLM]:
    s = FakeLLM(getattr(request, "param", "ok"))
    yield s
    s.close()


@pytest.fixture
def served(
    fake: FakeLLM,
    model: HookedTransformer,
    sae: SparseAutoencoder,
    records_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[TestClient]:
    monkeypatch.setenv(KEY_ENV, KEY)
    settings = LLMSettings(
        fake.url, "fake-model", KEY_ENV, timeout=0.5, retries=0, cache_dir=tmp_path / "llm"
    )
    st, client = llm_server(model, sae, records_dir, settings)
    with client:
        yield client
    st.close()


def test_llm_explanation_is_the_librarys_and_is_cached(
    served: TestClient, fake: FakeLLM, recs: Records, tmp_path: Path
) -> None:
    info = served.get("/api/model").json()
    assert info["explainers"] == [
        {"name": "offline", "label": "token statistics (no language model)", "model": None},
        {
            "name": "llm",
            "label": "written by fake-model (LLM) from top examples",
            "model": "fake-model",
        },
    ]
    r = served.post("/api/nodes/L1.N7/explain", json={"explainer": "llm"})
    assert r.status_code == 200, r.text
    got = r.json()
    # the same explanation from the library directly (its own cache, so the fake answers again)
    cfg = LLMConfig(fake.url, "fake-model", KEY, timeout=5.0, retries=0, cache_dir=tmp_path / "x")
    want = as_json(explain_node(LLMExplainer(cfg), recs.node("L1.N7")))
    assert got == want
    assert got["status"] == "ok" and got["score"] is not None and got["control"] is not None
    assert got["model"] == "fake-model" and got["explainer"] == "llm"
    n = len(fake.requests)
    assert served.post("/api/nodes/L1.N7/explain", json={"explainer": "llm"}).json() == want
    assert len(fake.requests) == n  # cached: the endpoint is not asked again
    rec = served.get("/api/nodes/L1.N7").json()
    assert [e["explainer"] for e in rec["explanations"]] == ["llm"]
    # the offline explainer is still there, beside it
    off = served.post("/api/nodes/L1.N7/explain", json={"explainer": "offline"}).json()
    assert off["explainer"] == "offline" and off["status"] == "ok"
    assert [x["name"] for x in served.get("/api/health").json()["lanes"]] == [
        "heavy",
        "light",
        "llm",
    ]


def test_the_key_never_leaves_the_server(served: TestClient, fake: FakeLLM) -> None:
    bodies = [
        served.get("/api/model").text,
        served.get("/api/health").text,
        served.get("/openapi.json").text,
        served.post("/api/nodes/L1.N3/explain", json={"explainer": "llm"}).text,
        served.post("/api/nodes/L0.N1/explain", json={"explainer": "llm", "refresh": True}).text,
    ]
    assert fake.requests  # the endpoint was asked (with the key: it refuses requests without)
    for body in bodies:
        assert KEY not in body and fake.url not in body


def test_without_an_llm_the_llm_explainer_is_a_clear_400(client: TestClient) -> None:
    info = client.get("/api/model").json()
    assert [e["name"] for e in info["explainers"]] == ["offline"]
    r = client.post("/api/nodes/L1.N7/explain", json={"explainer": "llm"})
    assert r.status_code == 400
    assert "--llm-url" in r.json()["error"] and r.json()["type"] == "InputError"
    r = client.post("/api/nodes/L1.N7/explain", json={"explainer": "../etc/passwd"})
    assert r.status_code == 422 and "explainer" in r.json()["error"]


@pytest.mark.parametrize(
    ("fake", "reason"),
    [
        ("slow", "no answer within 0.5 s"),
        ("garbage", "not a chat completion"),
        ("bad_sim", "does not list"),
    ],
    indirect=["fake"],
)
def test_a_misbehaving_endpoint_gives_a_failed_explanation(
    served: TestClient, fake: FakeLLM, reason: str
) -> None:
    r = served.post("/api/nodes/L1.N7/explain", json={"explainer": "llm"})
    assert r.status_code == 200, r.text
    e = r.json()
    assert e["status"] == "failed" and reason in e["error"], e
    assert e["score"] is None and e["node_id"] == "L1.N7" and e["explainer"] == "llm"
    # recorded: the node's record shows it with its reason
    rec = served.get("/api/nodes/L1.N7").json()
    assert [(x["status"], x["error"]) for x in rec["explanations"]] == [("failed", e["error"])]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NotHTTP:
    """A TCP server that answers every connection with bytes that are not HTTP."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"SSH-2.0-OpenSSH_9.2 hello\r\nnot http at all\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


def test_an_endpoint_that_is_down_or_not_http_never_makes_a_500(
    model: HookedTransformer, sae: SparseAutoencoder, records_dir: Path, tmp_path: Path
) -> None:
    weird = NotHTTP()
    try:
        for url, reason in (
            (f"http://127.0.0.1:{closed_port()}/v1", "cannot connect"),
            (weird.url, "explaining:"),
        ):
            settings = LLMSettings(url, "m", timeout=0.5, retries=0, cache_dir=tmp_path / "c")
            st, client = llm_server(model, sae, records_dir, settings)
            with client:
                r = client.post("/api/nodes/L0.H1/explain", json={"explainer": "llm"})
                assert r.status_code == 200, r.text
                assert r.json()["status"] == "failed" and reason in r.json()["error"], r.json()
                assert client.get("/api/health").json()["status"] == "ok"
            st.close()
    finally:
        weird.close()


@pytest.mark.parametrize("fake", ["slow"], indirect=True)
def test_a_slow_endpoint_does_not_hold_up_node_pages(served: TestClient, fake: FakeLLM) -> None:
    done: list[int] = []
    t = threading.Thread(
        target=lambda: done.append(
            served.post("/api/nodes/L1.N7/explain", json={"explainer": "llm"}).status_code
        )
    )
    t.start()
    while not fake.requests:  # the explanation is waiting on the endpoint now
        threading.Event().wait(0.01)
    for node in ("L0.H1", "L1.N3", "L0.resid_post.F2"):
        assert served.get(f"/api/nodes/{node}").status_code == 200
    assert t.is_alive() and not done  # the record reads finished first
    t.join(30)
    assert done == [200]


def test_settings_refuse_a_missing_key_variable_and_bad_urls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lenscope.errors import InputError

    monkeypatch.delenv("LENSCOPE_NO_SUCH_KEY", raising=False)
    with pytest.raises(InputError, match="LENSCOPE_NO_SUCH_KEY"):
        LLMSettings("http://127.0.0.1:9/v1", "m", "LENSCOPE_NO_SUCH_KEY").check()
    with pytest.raises(InputError, match="http"):
        LLMSettings("file:///etc/passwd", "m").check()
    with pytest.raises(InputError, match="--llm-model"):
        ServerConfig("tiny", llm=LLMSettings("http://127.0.0.1:9/v1", " ")).check()


def test_cli_flags_need_each_other_and_a_set_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from lenscope.cli.main import app

    monkeypatch.delenv("LENSCOPE_NO_SUCH_KEY", raising=False)
    for args, says in (
        (["--llm-url", "http://127.0.0.1:9/v1"], "--llm-model"),
        (["--llm-model", "m"], "--llm-url"),
        (
            [
                "--llm-url",
                "http://x/v1",
                "--llm-model",
                "m",
                "--llm-key-env",
                "LENSCOPE_NO_SUCH_KEY",
            ],
            "LENSCOPE_NO_SUCH_KEY",
        ),
    ):
        r = CliRunner().invoke(app, ["serve", "whatever", *args])
        assert r.exit_code != 0
        assert says in (r.output + str(r.exception))


def test_lenscope_serve_with_an_llm(
    tmp_path: Path,
    model: HookedTransformer,
    records_dir: Path,
    fake: FakeLLM,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As a user starts it: the key comes from the named variable and is never printed."""
    save_model(model, tmp_path / "tiny")
    monkeypatch.setenv(KEY_ENV, KEY)
    printed: list[str] = []
    proc, url = start_server(
        tmp_path / "tiny",
        tmp_path / "home",
        "--records",
        str(records_dir),
        "--llm-url",
        fake.url,
        "--llm-model",
        "fake-model",
        "--llm-key-env",
        KEY_ENV,
        lines=printed,
    )
    try:
        base = url.split("/?", 1)[0]
        info = httpx.get(f"{base}/api/model").json()
        assert [e["model"] for e in info["explainers"]] == [None, "fake-model"]
        r = httpx.post(f"{base}/api/nodes/L1.N7/explain", json={"explainer": "llm"}, timeout=60)
        assert r.status_code == 200 and r.json()["status"] == "ok", r.text
    finally:
        proc.send_signal(signal.SIGINT)
        out = "".join(printed) + proc.communicate(timeout=30)[0]
    assert "LLM explainer: fake-model, key from $" + KEY_ENV in out
    assert KEY not in out and KEY not in url
