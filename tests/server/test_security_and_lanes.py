"""Loopback by default, a token for anything else, Host checks, and fair bounded lanes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient

from lenscope import HookedTransformer
from lenscope.errors import InputError
from lenscope.server import ServerConfig, ServerState, create_app
from lenscope.server.config import DEMO_PROMPT, debugger_url, is_loopback
from lenscope.server.errors import ApiError
from lenscope.server.lanes import Lane
from tests.server.fixtures import PROMPT, QUESTION

T = TypeVar("T")


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on a fresh thread: the browser tests' sync Playwright may own this thread's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def test_exposed_binds_need_a_token() -> None:
    for host in ("127.0.0.1", "127.0.0.5", "::1", "localhost"):
        assert is_loopback(host)
        ServerConfig("m", host=host).check()
    for host in ("0.0.0.0", "192.168.1.4", "::", "example.org"):
        assert not is_loopback(host)
        with pytest.raises(InputError, match="--token"):
            ServerConfig("m", host=host).check()
        ServerConfig("m", host=host, token="s3cret-token").check()
    with pytest.raises(InputError, match="too short"):
        ServerConfig("m", host="0.0.0.0", token="abc").check()


def test_the_printed_url_holds_the_demo_question() -> None:
    from urllib.parse import parse_qs, urlparse

    url = debugger_url("127.0.0.1", 8765)
    q = parse_qs(urlparse(url).query)
    assert urlparse(url).netloc == "127.0.0.1:8765"
    assert q == {"prompt": [DEMO_PROMPT], "target": [")"], "distractor": [","]}
    assert "token=abc" in debugger_url("0.0.0.0", 1, token="abc")


def test_token_guards_the_api(model: HookedTransformer) -> None:
    st = ServerState(ServerConfig("tiny", host="0.0.0.0", token="s3cret-token"), model)
    c = TestClient(create_app(st), base_url="http://example.org")
    body = {"prompt": PROMPT, "question": QUESTION, "measure": 0}
    r = c.post("/api/why", json=body)
    assert r.status_code == 401 and "token" in r.json()["error"]
    assert (
        c.post("/api/why", json=body, headers={"Authorization": "Bearer wrong-token"}).status_code
        == 401
    )
    assert (
        c.post("/api/why", json=body, headers={"Authorization": "Bearer s3cret-token"}).status_code
        == 200
    )
    assert c.get("/api/model", headers={"X-Lenscope-Token": "s3cret-token"}).status_code == 200
    assert c.get("/api/health").status_code == 200  # open: says nothing about the model's data
    st.close()


def test_loopback_servers_answer_loopback_host_names_only(client: TestClient) -> None:
    r = client.get("/api/health", headers={"Host": "attacker.example:8765"})
    assert r.status_code == 400 and r.json()["type"] == "BadHost"
    for host in ("127.0.0.1:8765", "localhost", "[::1]:8765"):
        assert client.get("/api/health", headers={"Host": host}).status_code == 200


def test_one_slow_request_does_not_stall_the_others() -> None:
    lane = Lane("t", workers=2, max_pending=8)
    done: list[str] = []

    def work(name: str, seconds: float) -> str:
        time.sleep(seconds)
        done.append(name)
        return name

    async def main() -> list[str]:
        slow = asyncio.create_task(lane.run(work, "slow", 1.5))
        await asyncio.sleep(0.05)
        quick = [asyncio.create_task(lane.run(work, f"q{i}", 0.01)) for i in range(5)]
        await asyncio.gather(*quick)
        assert not slow.done()  # all quick ones finished while the slow one still ran
        return [await slow]

    assert run_coroutine(main()) == ["slow"]
    assert done[:5] == [f"q{i}" for i in range(5)]  # in arrival order
    assert lane.stats().completed == 6
    lane.shutdown()


def test_a_full_queue_answers_503_at_once() -> None:
    lane = Lane("t", workers=1, max_pending=1)

    async def main() -> None:
        a = asyncio.create_task(lane.run(time.sleep, 0.5))
        b = asyncio.create_task(lane.run(time.sleep, 0.01))
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        with pytest.raises(ApiError) as e:
            await lane.run(time.sleep, 0.01)
        assert e.value.status == 503 and time.monotonic() - t0 < 0.1
        await asyncio.gather(a, b)
        await lane.run(time.sleep, 0)  # and serves again once drained

    run_coroutine(main())
    assert lane.stats().rejected == 1
    lane.shutdown()


def test_requests_waiting_too_long_are_dropped() -> None:
    lane = Lane("t", workers=1, max_pending=4, queue_timeout=0.2)

    async def main() -> None:
        a = asyncio.create_task(lane.run(time.sleep, 0.5))
        await asyncio.sleep(0.02)
        with pytest.raises(ApiError, match="waited"):
            await lane.run(time.sleep, 0)
        await a

    run_coroutine(main())
    lane.shutdown()
