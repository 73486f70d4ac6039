"""Dense matmul speed: `lenscope.linalg.linear` (oneDNN on CPU) vs torch's own `@` (MKL on x86).

The shapes are those a GPT-2-small-sized forward pass and an SAE step multiply: 128 or 2,048
token rows against QKV, MLP-in, MLP-out, attention-out and unembedding weights, and the SAE
encoder. For each: the seconds of each kernel (minimum over interleaved repetitions), their
ratio (`speedup`, > 1 = lenscope faster) and the largest difference from a float64 reference
of both, so that the speed is not bought with precision. Prints one JSON object.
"""

from __future__ import annotations

import lenscope  # noqa: F401  before torch: large tensors on huge pages (lenscope.runtime)

# isort: split

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import interleaved_best, machine

from lenscope.linalg import linear, onednn_enabled

SHAPES = {  # name: (rows, d_in, d_out)
    "qkv_128": (128, 768, 2304),
    "mlp_in_128": (128, 768, 3072),
    "mlp_out_128": (128, 3072, 768),
    "attn_out_128": (128, 768, 768),
    "unembed_128": (128, 768, 50257),
    "mlp_in_2048": (2048, 768, 3072),
    "sae_encoder_4096": (4096, 768, 12288),
}


def main() -> None:
    g = torch.Generator().manual_seed(0)
    rows: dict[str, Any] = {}
    for name, (m, k, n) in SHAPES.items():
        x = torch.randn(m, k, generator=g)
        w = torch.randn(k, n, generator=g) / k**0.5
        ref = x.double() @ w.double()
        t = interleaved_best(
            {"torch": lambda x=x, w=w: x @ w, "lenscope": lambda x=x, w=w: linear(x, w)}, 5
        )
        rows[name] = {
            "shape": [m, k, n],
            "torch_s": t["torch"],
            "lenscope_s": t["lenscope"],
            "speedup": t["torch"] / t["lenscope"],
            "lenscope_gflops": 2 * m * k * n / t["lenscope"] / 1e9,
            "max_abs_err_torch": float((x @ w - ref).abs().max()),
            "max_abs_err_lenscope": float((linear(x, w) - ref).abs().max()),
        }
    speedups = sorted(r["speedup"] for r in rows.values())
    print(
        json.dumps(
            {
                "benchmark": "matmul",
                "onednn": onednn_enabled(),
                "machine": machine(),
                "threads": torch.get_num_threads(),
                "load_average": os.getloadavg()[0],
                "median_speedup": speedups[len(speedups) // 2],
                "shapes": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
