"""Loading a checkpoint holds about one copy of its weights: peak RSS while loading a ~120 MB
sharded bf16 Llama, measured in a fresh interpreter by benchmarks/load.py's probe, stays within
1.3x the weights plus a small fixed allowance (the old loader, float32 random init + a full
read + a copy, needed over 4x for bf16)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "load.py"
ALLOWANCE = 40 << 20  # modules imported on first load, allocator slack


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lenscope_bench_load", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_peak_memory_while_loading_is_at_most_1_3x_the_weights(tmp_path: Path) -> None:
    bench = _bench()
    shape = argparse.Namespace(
        layers=4, d_model=1024, heads=16, kv_heads=4, d_mlp=3584, vocab=16384, shard_mb=30
    )
    nbytes = bench.write_checkpoint(tmp_path, shape, torch.bfloat16)
    assert 100 << 20 < nbytes < 200 << 20
    assert len(list(tmp_path.glob("*.safetensors"))) >= 4
    r = bench.measure("lenscope", tmp_path)
    assert "error" not in r, r
    assert r["dtypes"] == ["bfloat16"] and r["param_bytes"] == nbytes
    assert r["extra_bytes"] <= 1.3 * nbytes + ALLOWANCE, r
    # and the weights really are in memory, once: not left behind in the files
    assert 0.9 * nbytes <= r["resident_after_reading_weights_bytes"] <= 1.1 * nbytes + ALLOWANCE


def test_the_writer_writes_what_transformers_reads(tmp_path: Path) -> None:
    """The benchmark's hand-written shards are valid safetensors with a valid index."""
    from safetensors import safe_open

    bench = _bench()
    shape = argparse.Namespace(
        layers=1, d_model=32, heads=4, kv_heads=2, d_mlp=64, vocab=50, shard_mb=0
    )
    bench.write_checkpoint(tmp_path, shape, torch.float16)
    seen = {}
    for f in sorted(tmp_path.glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            seen |= {k: st.get_tensor(k) for k in st.keys()}  # noqa: SIM118
    assert set(seen) == set(bench.llama_shapes(shape))
    assert all(tuple(v.shape) == bench.llama_shapes(shape)[k] for k, v in seen.items())
    assert seen["model.norm.weight"].eq(1).all() and seen["model.embed_tokens.weight"].std() > 0.01
