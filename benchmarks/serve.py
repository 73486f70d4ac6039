"""The activation server: debugger-question latency through HTTP vs the library, and throughput.

Starts `lenscope serve MODEL --port 0` (mini, else attn2) as a user would, asks the demo question
(why `)` rather than `,`) sequentially through HTTP and through `Debugger.why` in this process,
interleaved, and reports p50/p99 of each and their ratio (goal: HTTP <= 1.2x the library). Then
`--clients` concurrent clients ask for `--seconds` on loopback: requests/s, p50/p99, errors.
Prints one JSON object. `--clients 32 --seconds 30` is the issue's load test (the default).

`--soak-rounds N` adds a bounded memory soak: N rounds of `--soak-clients` (40) clients for
`--soak-seconds` (at most 30) each, on loopback, with the server's resident memory (RSS, the
process and its children, from /proc) read before the first round, sampled during each round
(peak) and read after each round once the server has been idle for `--soak-settle` seconds. If
the growth from one round to the next shrinks towards zero, memory levels off (allocator arenas
and caches filling once); growth that stays the same every round is a leak. `--soak-only` skips
the latency and load parts.
"""

from __future__ import annotations

import lenscope  # noqa: F401  before torch: large tensors on huge pages (lenscope.runtime)

# isort: split

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine

from lenscope.attribution.api import Debugger
from lenscope.attribution.questions import LogitDiff
from lenscope.errors import LenscopeError
from lenscope.model.load import fingerprint, load_model, resolve_model_path
from lenscope.sae import load_sae, saes_for_model
from lenscope.server.config import DEMO_DISTRACTOR, DEMO_PROMPT, DEMO_TARGET
from lenscope.server.run import torch_threads

QUESTION = {"kind": "logit_diff", "target": [DEMO_TARGET], "distractor": [DEMO_DISTRACTOR]}
TOP_K, MEASURE = 10, 8


def pick_model() -> str:
    for name in ("mini", "attn2"):
        try:
            resolve_model_path(name)
            return name
        except LenscopeError:
            continue
    raise SystemExit("no shipped model (mini, attn2) to benchmark")


def start(name: str, workers: int) -> tuple[subprocess.Popen[str], str]:
    exe = str(Path(sys.executable).parent / "lenscope")
    proc = subprocess.Popen(
        [exe, "serve", name, "--host", "127.0.0.1", "--port", "0", "--workers", str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "open the debugger: " in line:
            url = line.split("open the debugger: ", 1)[1].strip()
            return proc, url.split("/?", 1)[0]
    raise SystemExit("the server did not start")


def quantiles(xs: list[float]) -> dict[str, float]:
    q = statistics.quantiles(xs, n=100, method="inclusive")
    return {"p50_ms": 1000 * q[49], "p99_ms": 1000 * q[98], "mean_ms": 1000 * statistics.fmean(xs)}


def latency(base: str, name: str, n: int) -> dict[str, Any]:
    model = load_model(name).eval()
    # the same SAEs the server splices in by default, so both sides answer the same question
    saes = [load_sae(p).eval() for p in saes_for_model(fingerprint(model), residual_only=True)]
    dbg = Debugger(model, saes)
    q = LogitDiff(target=[DEMO_TARGET], distractor=[DEMO_DISTRACTOR])
    body = {"prompt": DEMO_PROMPT, "question": QUESTION, "top_k": TOP_K, "measure": MEASURE}
    http: list[float] = []
    lib: list[float] = []
    with httpx.Client(base_url=base, timeout=120) as c:
        for i in range(n + 2):  # two warm-up rounds
            t0 = time.perf_counter()
            r = c.post("/api/why", json=body)
            t1 = time.perf_counter()
            r.raise_for_status()
            res = dbg.why(DEMO_PROMPT, q, top_k=TOP_K, measure=MEASURE)
            t2 = time.perf_counter()
            if i >= 2:
                http.append(t1 - t0)
                lib.append(t2 - t1)
            assert abs(r.json()["value"] - res.value) < 1e-4
    h, lb = quantiles(http), quantiles(lib)
    return {
        "requests": n,
        "saes": [s.cfg.hook_name for s in saes],
        "http": h,
        "library": lb,
        "overhead_ratio_p50": h["p50_ms"] / lb["p50_ms"],
        "overhead_ratio_p99": h["p99_ms"] / lb["p99_ms"],
        "goal_ratio": 1.2,
    }


MAX_SOAK_SECONDS = 30.0


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants (MB), from /proc."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            status = Path(f"/proc/{p}/status").read_text()
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue  # gone
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])  # kB
        for t in tasks:
            try:
                todo += [int(c) for c in (t / "children").read_text().split()]
            except OSError:
                continue
    return total / 1024


def _sample(pid: int, into: list[float], done: threading.Event) -> None:
    while not done.wait(0.5):
        into.append(rss_mb(pid))


def soak(
    base: str, pid: int, rounds: int, clients: int, seconds: float, settle: float
) -> dict[str, Any]:
    """Rounds of concurrent load, with the server's RSS before, during (peak) and after each."""
    if not 0 < seconds <= MAX_SOAK_SECONDS:
        raise SystemExit(f"--soak-seconds must lie in (0, {MAX_SOAK_SECONDS:g}]")
    before = rss_mb(pid)
    out: list[dict[str, Any]] = []
    for i in range(rounds):
        peak = [rss_mb(pid)]
        done = threading.Event()
        sampler = threading.Thread(target=_sample, args=(pid, peak, done))
        sampler.start()
        try:
            ld = load(base, clients, seconds)
        finally:
            done.set()
            sampler.join()
        time.sleep(settle)
        after = rss_mb(pid)
        prev = out[-1]["rss_after_mb"] if out else before
        out.append(
            {
                "round": i + 1,
                "requests": ld["requests"],
                "errors": ld["errors"],
                "throughput_rps": ld["throughput_rps"],
                "rss_peak_mb": max(peak),
                "rss_after_mb": after,
                "growth_mb": after - prev,
            }
        )
    growth = [r["growth_mb"] for r in out]
    return {
        "rounds": rounds,
        "clients": clients,
        "seconds_per_round": seconds,
        "settle_seconds": settle,
        "rss_before_mb": before,
        "per_round": out,
        "rss_after_mb": out[-1]["rss_after_mb"] if out else before,
        # the later rounds' growth against the first's: near 0 when memory levels off
        "later_growth_vs_first": (
            max(growth[1:]) / growth[0] if len(growth) > 1 and growth[0] > 0 else None
        ),
    }


def load(base: str, clients: int, seconds: float) -> dict[str, Any]:
    body = {"prompt": DEMO_PROMPT, "question": QUESTION, "top_k": TOP_K, "measure": MEASURE}
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        prompt = DEMO_PROMPT if i % 2 == 0 else DEMO_PROMPT.replace("items", "values")
        with httpx.Client(base_url=base, timeout=300) as c:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                try:
                    r = c.post("/api/why", json=body | {"prompt": prompt})
                    ok = r.status_code == 200
                    err = "" if ok else f"{r.status_code}: {r.text[:120]}"
                except httpx.HTTPError as e:
                    ok, err = False, f"{type(e).__name__}: {e}"
                dt = time.perf_counter() - t0
                with lock:
                    lat.append(dt)
                    if not ok:
                        errors.append(err)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    out: dict[str, Any] = {
        "clients": clients,
        "seconds": seconds,
        "requests": len(lat),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "throughput_rps": len(lat) / wall,
    }
    if len(lat) >= 2:
        out |= quantiles(lat)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--soak-rounds", type=int, default=0, help="memory soak rounds (0: none)")
    ap.add_argument("--soak-clients", type=int, default=40)
    ap.add_argument("--soak-seconds", type=float, default=20.0, help="per round, at most 30")
    ap.add_argument("--soak-settle", type=float, default=3.0, help="idle seconds before reading")
    ap.add_argument("--soak-only", action="store_true", help="skip the latency and load parts")
    args = ap.parse_args()
    name = args.model or pick_model()
    threads = torch_threads(args.workers)
    torch.set_num_threads(threads)  # the library runs as one of the server's workers does
    proc, base = start(name, args.workers)
    lat: dict[str, Any] | None = None
    ld: dict[str, Any] | None = None
    sk: dict[str, Any] | None = None
    try:
        if not args.soak_only:
            lat = latency(base, name, args.requests)
            ld = load(base, args.clients, args.seconds)
        if args.soak_rounds > 0:
            warm = {"prompt": DEMO_PROMPT, "question": QUESTION, "top_k": TOP_K, "measure": MEASURE}
            httpx.post(f"{base}/api/why", json=warm, timeout=120).raise_for_status()
            sk = soak(
                base,
                proc.pid,
                args.soak_rounds,
                args.soak_clients,
                args.soak_seconds,
                args.soak_settle,
            )
        health = httpx.get(f"{base}/api/health").json()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    result = {
        "benchmark": "serve",
        "model": name,
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "torch_threads_per_request": threads,
        "question": {"prompt": DEMO_PROMPT, **QUESTION, "top_k": TOP_K, "measure": MEASURE},
        "latency": lat,
        "load": ld,
        "soak": sk,
        "server_lanes": health["lanes"],
    }
    result["machine"] = machine()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
