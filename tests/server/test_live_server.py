"""`lenscope serve` as a user starts it: the printed URL, a bounded load test, a clean stop."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from typer.testing import CliRunner

from lenscope import HookedTransformer, save_model
from lenscope.cli.main import app
from lenscope.defaults import DEMO_PROMPT
from tests.server.fixtures import PROMPT, QUESTION

LENSCOPE = str(Path(sys.executable).parent / "lenscope")


def start_server(
    model_dir: Path, home: Path, *extra: str, lines: list[str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """`lenscope serve` on a free port; its printed lines go to `lines` (when given)."""
    env = os.environ | {"LENSCOPE_HOME": str(home)}
    proc = subprocess.Popen(
        [LENSCOPE, "serve", str(model_dir), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines = [] if lines is None else lines
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "open the debugger: " in line:
            return proc, line.split("open the debugger: ", 1)[1].strip()
    proc.kill()
    raise AssertionError("the server printed no URL:\n" + "".join(lines))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, model: HookedTransformer) -> Iterator[str]:
    d = tmp_path_factory.mktemp("live")
    save_model(model, d / "tiny")
    proc, url = start_server(d / "tiny", d / "home", "--workers", "2")
    yield url
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0


def test_the_startup_line_opens_the_debugger_with_a_question(live: str) -> None:
    u = urlparse(live)
    assert u.hostname == "127.0.0.1"
    q = parse_qs(u.query)
    assert q["target"] == [")"] and q["distractor"] == [","] and q["prompt"] == [DEMO_PROMPT]
    page = httpx.get(live)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert httpx.get(f"http://127.0.0.1:{u.port}/api/health").json()["status"] == "ok"
    spec = httpx.get(f"http://127.0.0.1:{u.port}/openapi.json").json()
    assert "/api/why" in spec["paths"]


def test_bounded_load_has_no_errors(live: str) -> None:
    """8 clients for 5 s on loopback (the 32 x 30 s version is benchmarks/serve.py)."""
    base = f"http://127.0.0.1:{urlparse(live).port}"
    body = {"prompt": PROMPT, "question": QUESTION, "top_k": 5, "measure": 2}
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + 5.0

    def client(i: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            while time.monotonic() < stop:
                b = body | {"prompt": PROMPT if i % 2 else "w3 w9 w3 w9"}
                t0 = time.perf_counter()
                r = c.post("/api/why", json=b)
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:3]
    assert len(latencies) >= 8
    q = statistics.quantiles(latencies, n=100)
    print(
        f"\nload: {len(latencies)} requests, p50 {1000 * q[49]:.0f} ms, p99 {1000 * q[98]:.0f} ms"
    )


def test_serve_refuses_an_exposed_bind_without_a_token(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["serve", "whatever", "--host", "0.0.0.0"])
    assert r.exit_code == 1 or "--token" in str(r.exception)
    assert "--token" in (r.output + str(r.exception))
