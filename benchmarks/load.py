"""Peak memory while loading a large checkpoint: lenscope vs transformers' `from_pretrained`.

Writes a random Llama-style checkpoint (default: Llama-3.2-1B's shape, 1.24B parameters, bf16,
sharded with an index) tensor by tensor, in row chunks, so the writer stays small; then loads it
in a fresh subprocess per loader and reads that process's peak RSS while loading (Linux's VmHWM,
reset just before) minus its RSS just before (torch and the loader imported, idle). Prints one JSON
object with each loader's ratio of that extra memory to the loaded weights' bytes (the issue's goal
for lenscope: at most 1.3), and the memory resident once every weight has been read (a loader that
leaves weights memory-mapped looks small until the first forward pass). The checkpoint lives in a temporary directory, deleted afterwards.

    python benchmarks/load.py                      # ~2.5 GB on disk, about a minute
    python benchmarks/load.py --layers 2 --d-model 512 --vocab 8192 --no-peers   # a quick one
"""

from __future__ import annotations

import lenscope  # noqa: F401  before torch: large tensors on huge pages (lenscope.runtime)

# isort: split

import argparse
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

ST_DTYPE = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32"}
CHUNK_ROWS_BYTES = 16 << 20  # the writer holds at most this much of a tensor at a time


def llama_shapes(a: argparse.Namespace) -> dict[str, tuple[int, ...]]:
    d, dh = a.d_model, a.d_model // a.heads
    out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (a.vocab, d)}
    for i in range(a.layers):
        p = f"model.layers.{i}."
        out |= {
            p + "input_layernorm.weight": (d,),
            p + "post_attention_layernorm.weight": (d,),
            p + "self_attn.q_proj.weight": (a.heads * dh, d),
            p + "self_attn.k_proj.weight": (a.kv_heads * dh, d),
            p + "self_attn.v_proj.weight": (a.kv_heads * dh, d),
            p + "self_attn.o_proj.weight": (d, a.heads * dh),
            p + "mlp.gate_proj.weight": (a.d_mlp, d),
            p + "mlp.up_proj.weight": (a.d_mlp, d),
            p + "mlp.down_proj.weight": (d, a.d_mlp),
        }
    out["model.norm.weight"] = (d,)
    return out


def write_checkpoint(d: Path, a: argparse.Namespace, dtype: torch.dtype) -> int:
    """A random Llama checkpoint in shards of about `a.shard_mb` MB with its index; its bytes."""
    shapes = llama_shapes(a)
    size = dtype.itemsize
    shards: list[list[str]] = [[]]
    filled = 0
    for name, shape in shapes.items():
        n = size * _numel(shape)
        if shards[-1] and filled + n > a.shard_mb << 20:
            shards.append([])
            filled = 0
        shards[-1].append(name)
        filled += n
    gen = torch.Generator().manual_seed(0)
    weight_map, total = {}, 0
    for s, names in enumerate(shards):
        file = f"model-{s + 1:05d}-of-{len(shards):05d}.safetensors"
        header: dict[str, Any] = {}
        off = 0
        for name in names:
            n = size * _numel(shapes[name])
            header[name] = {
                "dtype": ST_DTYPE[dtype],
                "shape": list(shapes[name]),
                "data_offsets": [off, off + n],
            }
            off += n
            weight_map[name] = file
        raw = json.dumps(header).encode()
        raw += b" " * (-len(raw) % 8)
        with (d / file).open("wb") as f:
            f.write(struct.pack("<Q", len(raw)) + raw)
            for name in names:
                _write_random(f, shapes[name], dtype, gen, norm=name.endswith("norm.weight"))
        total += off
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": a.d_model,
        "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads,
        "num_key_value_heads": a.kv_heads,
        "intermediate_size": a.d_mlp,
        "vocab_size": a.vocab,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": True,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }
    (d / "config.json").write_text(json.dumps(config))
    return total


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _write_random(
    f: Any, shape: tuple[int, ...], dtype: torch.dtype, gen: torch.Generator, norm: bool
) -> None:
    if norm:
        f.write(_bytes(torch.ones(shape, dtype=dtype)))
        return
    rows, cols = shape[0], _numel(shape[1:])
    step = max(1, CHUNK_ROWS_BYTES // (4 * max(cols, 1)))
    for r in range(0, rows, step):
        chunk = (torch.randn(min(step, rows - r), cols, generator=gen) * 0.02).to(dtype)
        f.write(_bytes(chunk))


def _bytes(t: torch.Tensor) -> bytes:
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return bytes(t.numpy().tobytes())


CHILD = """
import json, re, sys, time
kind, path = sys.argv[1], sys.argv[2]
if kind == "lenscope":
    import lenscope, torch
    load = lambda: lenscope.load_model(path)
else:
    import torch, transformers
    from transformers import LlamaForCausalLM
    load = lambda: LlamaForCausalLM.from_pretrained(path, dtype=torch.bfloat16)

def kb(key):
    return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1))

def reset_peak():  # Linux: VmHWM restarts from the current RSS
    open("/proc/self/clear_refs", "w").write("5")

reset_peak()
base = kb("VmRSS")
t = time.perf_counter()
model = load()
seconds = time.perf_counter() - t
peak = kb("VmHWM")
ps = list(model.parameters())
with torch.no_grad():  # read every weight once, as a forward pass would
    for p in ps:
        p.sum()
used = kb("VmRSS")
print(json.dumps({
    "seconds": round(seconds, 2), "baseline_mb": round(base / 1024, 1),
    "load_peak_mb": round(peak / 1024, 1), "extra_bytes": (peak - base) * 1024,
    "resident_after_reading_weights_bytes": (used - base) * 1024,
    "param_bytes": sum(p.numel() * p.element_size() for p in ps),
    "dtypes": sorted({str(p.dtype).removeprefix("torch.") for p in ps}),
}))
"""


def measure(kind: str, path: Path) -> dict[str, Any]:
    """Load in a fresh interpreter and report its peak memory above its idle baseline."""
    r = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(path)], capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    out["ratio"] = round(out["extra_bytes"] / out["param_bytes"], 3)
    used = out["resident_after_reading_weights_bytes"] / out["param_bytes"]
    out["ratio_after_reading_weights"] = round(used, 3)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--d-model", type=int, default=2048)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--d-mlp", type=int, default=8192)
    p.add_argument("--vocab", type=int, default=128256)
    p.add_argument("--shard-mb", type=int, default=1000)
    p.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16")
    p.add_argument("--no-peers", action="store_true", help="measure lenscope only")
    a = p.parse_args(argv)
    dtype = getattr(torch, a.dtype)
    with tempfile.TemporaryDirectory(prefix="lenscope-load-bench-") as tmp:
        d = Path(tmp)
        nbytes = write_checkpoint(d, a, dtype)
        shards = len(list(d.glob("*.safetensors")))
        out: dict[str, Any] = {
            "checkpoint": {
                "params": nbytes // dtype.itemsize,
                "bytes": nbytes,
                "dtype": a.dtype,
                "shards": shards,
            },
            "lenscope": measure("lenscope", d),
        }
        if not a.no_peers:
            out["transformers"] = measure("transformers", d)
            out["transformer_lens"] = (
                "not measured: HookedTransformer.from_pretrained needs an official model name "
                "and builds it from a transformers model, so it holds that model too"
            )
    sys.path.insert(0, str(Path(__file__).parent))
    from common import machine  # here: importing this file for its writer wraps no kernels

    out["goal"] = "lenscope ratio <= 1.3"
    out["machine"] = machine()
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
