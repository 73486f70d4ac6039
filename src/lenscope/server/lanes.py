"""Bounded worker pools ("lanes") that run the library off the event loop, first come first served.

A lane has a fixed number of worker threads and a FIFO queue in front of them, so one slow request
occupies one worker while the others keep serving. The queue is bounded: beyond `max_pending`
waiting requests, or after `queue_timeout` seconds of waiting, a request gets a 503 at once rather
than piling up. The server has two lanes: `heavy` (forward/backward passes) and `light` (record
queries, tokenizing), so node pages stay quick while debugger questions run.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pydantic import BaseModel

from lenscope.server.errors import ApiError

T = TypeVar("T")


class LaneStats(BaseModel):
    name: str
    workers: int
    running: int
    waiting: int
    completed: int
    rejected: int
    p50_ms: float | None
    p99_ms: float | None


class Lane:
    def __init__(
        self, name: str, workers: int, max_pending: int = 64, queue_timeout: float = 60.0
    ) -> None:
        self.name = name
        self.workers = workers
        self.max_pending = max_pending
        self.queue_timeout = queue_timeout
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"lenscope-{name}")
        self._lock = threading.Lock()
        self._admitted = 0  # running + waiting
        self._running = 0
        self._completed = 0
        self._rejected = 0
        self._latency: deque[float] = deque(maxlen=1000)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` on a worker; 503 when the queue is full or waited too long."""
        with self._lock:
            if self._admitted >= self.workers + self.max_pending:
                self._rejected += 1
                raise ApiError(
                    503,
                    f"the server is busy ({self._admitted} requests in flight); retry shortly",
                    "Busy",
                )
            self._admitted += 1
        queued = time.monotonic()

        def job() -> T:
            waited = time.monotonic() - queued
            if waited > self.queue_timeout:
                with self._lock:
                    self._rejected += 1
                raise ApiError(
                    503,
                    f"the request waited {waited:.0f} s for a worker and was dropped; retry",
                    "Busy",
                )
            with self._lock:
                self._running += 1
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self._running -= 1

        try:
            result = await asyncio.get_running_loop().run_in_executor(self._pool, job)
        finally:
            with self._lock:
                self._admitted -= 1
        with self._lock:
            self._completed += 1
            self._latency.append(time.monotonic() - queued)
        return result

    def stats(self) -> LaneStats:
        with self._lock:
            lat = sorted(self._latency)
            return LaneStats(
                name=self.name,
                workers=self.workers,
                running=self._running,
                waiting=self._admitted - self._running,
                completed=self._completed,
                rejected=self._rejected,
                p50_ms=_quantile(lat, 0.5),
                p99_ms=_quantile(lat, 0.99),
            )

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _quantile(sorted_s: list[float], q: float) -> float | None:
    if not sorted_s:
        return None
    i = min(len(sorted_s) - 1, max(0, round(q * (len(sorted_s) - 1))))
    return 1000.0 * sorted_s[i]
