"""Shared benchmark helpers: timing by median of repeats, a GPT-2-small-sized random checkpoint,
and `machine()`: the CPU, its vector extensions and which matmul kernels ran, for every JSON.

Every benchmark takes `--device cpu|cuda|cuda:N|auto` (`bench_device()`; default cpu). On CUDA
the timers synchronise the GPU before reading the clock (kernels run asynchronously: without it a
timer measures the launch, not the work) and `machine()` names the GPU."""

from __future__ import annotations

import lenscope  # noqa: F401  before torch: large tensors on huge pages (lenscope.runtime)

# isort: split

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import lenscope.linalg as _linalg
from lenscope.device import DEVICE_HELP, resolve_device
from lenscope.errors import LenscopeError
from lenscope.runtime import huge_pages_enabled

# The device the benchmark runs on: `bench_device()` sets it from `--device`.
DEVICE = torch.device("cpu")


def bench_device(argv: list[str] | None = None) -> torch.device:
    """The `--device` of this benchmark's command line (default cpu), kept in `DEVICE` so that the
    timers synchronise it; the other arguments are left to the benchmark."""
    global DEVICE
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--device", default="cpu", help=DEVICE_HELP)
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if argv is None:
        sys.argv[1:] = rest
    try:
        DEVICE = resolve_device(args.device)
    except LenscopeError as e:
        raise SystemExit(f"error: {e}") from None
    return DEVICE


def sync() -> None:
    """Wait for the GPU's queued work (nothing on the CPU): call before reading a clock."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def gpu_info() -> dict[str, Any] | None:
    """The GPU the benchmark ran on (None on the CPU)."""
    if DEVICE.type != "cuda":
        return None
    p = torch.cuda.get_device_properties(DEVICE)
    return {
        "name": torch.cuda.get_device_name(DEVICE),
        "capability": f"{p.major}.{p.minor}",
        "memory_gib": round(p.total_memory / 2**30, 1),
        "multiprocessors": p.multi_processor_count,
        "cuda": torch.version.cuda,
        "bf16_supported": torch.cuda.is_bf16_supported(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
    }


# The vector extensions that decide a matmul's speed, as /proc/cpuinfo's `flags` spell them.
VECTOR_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni",
    "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "amx_tile", "amx_bf16", "amx_int8",
)  # fmt: skip

# Every matmul that `lenscope.linalg` sends somewhere, counted by kernel: the counters wrap its
# two kernels once, when a benchmark imports this module, so every figure says what ran.
KERNEL_CALLS: Counter[str] = Counter()


def _counted(name: str, fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def call(*args: Any) -> torch.Tensor:
        KERNEL_CALLS[name] += 1
        return fn(*args)

    return call


if not getattr(_linalg, "_bench_counted", False):
    _linalg._onednn = _counted("onednn", _linalg._onednn)
    _linalg._torch = _counted("torch", _linalg._torch)
    _linalg._bench_counted = True  # type: ignore[attr-defined]


def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """The CPU's model name and which of `VECTOR_FLAGS` it has (Linux's /proc/cpuinfo)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():  # the first processor's fields
        key, sep, value = line.partition(":")
        if not sep:
            if fields:
                break
            continue
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {
        "model": fields.get("model name") or platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "vector_extensions": [f for f in VECTOR_FLAGS if f in flags],
    }


def torch_blas() -> str | None:
    """The BLAS library torch's `@` calls on CPU, as its build configuration names it."""
    found = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    return found.group(1) if found else None


def machine() -> dict[str, Any]:
    """Where a figure came from: the CPU and its vector extensions, torch's kernels (the ISA its
    vectorised kernels use, its BLAS, oneDNN) and how many matmuls lenscope sent to oneDNN and to
    torch in this process so far (`lenscope.linalg` decides each), huge pages."""
    return {
        "device": str(DEVICE),
        "gpu": gpu_info(),
        "cpu": cpu_info(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": torch_blas(),
        "mkl_available": torch.backends.mkl.is_available(),
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        "lenscope_onednn": _linalg.onednn_enabled(),
        "lenscope_onednn_min_macs": _linalg.MIN_MACS,
        "matmul_calls": {"onednn": KERNEL_CALLS["onednn"], "torch": KERNEL_CALLS["torch"]},
        "huge_pages": huge_pages_enabled(),
    }


def median_seconds(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
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
            sync()
            t0 = time.perf_counter()
            f()
            sync()
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
    """The machine's own fp32 matmul rate, measured now (GFLOP/s) on `DEVICE`: the faster of
    torch's `@` and oneDNN's linear kernel (`lenscope.linalg`, which takes CPU tensors only), so
    that no figure flatters lenscope."""
    from lenscope.linalg import linear_t

    a, b = torch.randn(m, k, device=DEVICE), torch.randn(n, k, device=DEVICE)
    s = min(
        median_seconds(lambda: a @ b.t(), repeats), median_seconds(lambda: linear_t(a, b), repeats)
    )
    return 2 * m * k * n / s / 1e9
