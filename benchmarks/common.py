"""Shared benchmark helpers: timing by median of repeats, a GPT-2-small-sized random checkpoint."""

from __future__ import annotations

import lenscope  # noqa: F401  before torch: large tensors on huge pages (lenscope.runtime)

# isort: split

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def median_seconds(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved_best(fns: dict[str, Callable[[], Any]], reps: int) -> dict[str, float]:
    """Seconds of each function: the minimum over `reps` rounds that run every function once
    (after one warm-up call each), so that load drift hits all of them alike."""
    best = dict.fromkeys(fns, float("inf"))
    for f in fns.values():
        f()
    for _ in range(reps):
        for name, f in fns.items():
            t0 = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def gpt2_small_random(n_layers: int = 12, seed: int = 0) -> tuple[Any, Path]:
    """A randomly initialised GPT-2-small-sized `transformers` model, saved to a temp dir."""
    import transformers as tf

    torch.manual_seed(seed)
    cfg = tf.GPT2Config(n_layer=n_layers, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024)
    model = tf.GPT2LMHeadModel(cfg).eval()
    d = Path(tempfile.mkdtemp(prefix="lenscope-bench-gpt2-"))
    model.save_pretrained(d, safe_serialization=True)
    return model, d


def matmul_gflops(m: int = 2048, k: int = 2048, n: int = 2048, repeats: int = 5) -> float:
    """The machine's own fp32 matmul rate, measured now (GFLOP/s): the faster of torch's `@`
    and oneDNN's linear kernel (`lenscope.linalg`), so that no figure flatters lenscope."""
    from lenscope.linalg import linear_t

    a, b = torch.randn(m, k), torch.randn(n, k)
    s = min(
        median_seconds(lambda: a @ b.t(), repeats), median_seconds(lambda: linear_t(a, b), repeats)
    )
    return 2 * m * k * n / s / 1e9
