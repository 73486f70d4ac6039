"""Cost of a full node table against one plain forward+backward of transformers' GPT2LMHeadModel.

Models: a GPT-2-small-sized random checkpoint (made and saved by `transformers`, loaded by
lenscope) and `mini` (the shipped model if present, else a random model of its shape; the peer is
a random GPT2LMHeadModel of the same shape). Prompt: 64 random tokens. Prints one JSON object:
p50 latencies and ratios (median over interleaved rounds) (node table without measured ablations, and with the default 8 measured
rows per granularity) to the peer's fwd+bwd p50. Goal: table / peer <= 1.5. `--device cuda`
runs both on the GPU (timers synchronise it).
"""

from __future__ import annotations

import lenscope  # noqa: F401  before torch: large tensors on huge pages (lenscope.runtime)

# isort: split

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
import common
from common import bench_device, machine, sync

from lenscope import HookedTransformer, load_model
from lenscope.attribution.api import Debugger
from lenscope.attribution.questions import LogitDiff
from lenscope.errors import ModelNotFoundError

N_TOKENS = 64


def timed(fn: Callable[[], Any]) -> float:
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


def interleaved(fns: dict[str, Callable[[], Any]], reps: int) -> dict[str, list[float]]:
    """Run each function once per round, in turn, so load on a shared machine hits all alike."""
    for f in fns.values():
        f()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            out[k].append(timed(f))
    return out


def hf_fwd_bwd(model: torch.nn.Module, tokens: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        model.zero_grad(set_to_none=True)
        out = model(input_ids=tokens, labels=tokens)
        out.loss.backward()

    return run


def bench(name: str, ours: HookedTransformer, peer: torch.nn.Module, reps: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    v = ours.cfg.d_vocab
    tokens = torch.randint(v // 100, v - v // 100, (1, N_TOKENS), generator=g)
    ours, peer = ours.to(common.DEVICE), peer.to(common.DEVICE)
    dbg = Debugger(ours)
    q = LogitDiff(target=[int(tokens[0, 3])], distractor=[int(tokens[0, 4])])
    ids = tokens[0].tolist()
    t = interleaved(
        {
            "peer": hf_fwd_bwd(peer, tokens.to(common.DEVICE)),
            "table": lambda: dbg.why(ids, q, measure=0),
            "full": lambda: dbg.why(ids, q, measure=8),
        },
        reps,
    )
    med = {k: statistics.median(v) for k, v in t.items()}

    def ratio(k: str) -> float:
        return statistics.median(a / b for a, b in zip(t[k], t["peer"], strict=True))

    return {
        "model": name,
        "tokens": N_TOKENS,
        "hf_fwd_bwd_p50_s": round(med["peer"], 4),
        "table_p50_s": round(med["table"], 4),
        "table_with_ablations_p50_s": round(med["full"], 4),
        "table_ratio": round(ratio("table"), 3),
        "table_with_ablations_ratio": round(ratio("full"), 3),
        "goal_ratio": 1.5,
    }


def gpt2_small(tmp: Path) -> tuple[HookedTransformer, torch.nn.Module]:
    import transformers as tf

    torch.manual_seed(0)
    hf = tf.GPT2LMHeadModel(tf.GPT2Config())
    hf.save_pretrained(tmp / "gpt2-small-random", safe_serialization=True)
    return load_model(tmp / "gpt2-small-random"), hf


def mini() -> tuple[HookedTransformer, torch.nn.Module, str]:
    import transformers as tf

    try:
        ours, source = load_model("mini"), "shipped"
    except ModelNotFoundError:
        from lenscope import ModelConfig
        from lenscope.train.recipes import get_recipe

        r = get_recipe("mini")
        cfg = ModelConfig(
            n_layers=r.n_layers,
            d_model=r.d_model,
            n_heads=r.n_heads,
            d_vocab=4096,
            n_ctx=r.n_ctx,
            d_mlp=r.d_mlp,
            tie_embeddings=True,
            name="mini",
        )
        ours, source = HookedTransformer(cfg), "random (mini not trained yet)"
    c = ours.cfg
    peer = tf.GPT2LMHeadModel(
        tf.GPT2Config(
            vocab_size=c.d_vocab,
            n_positions=c.n_ctx,
            n_embd=c.d_model,
            n_layer=c.n_layers,
            n_head=c.n_heads,
            n_inner=c.d_mlp,
        )
    )
    return ours, peer, source


def main() -> None:
    dev = bench_device()
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    out: dict[str, Any] = {
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "results": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        ours, peer = gpt2_small(Path(tmp))
        out["results"].append(bench("gpt2-small-random", ours, peer, reps))
    ours, peer, source = mini()
    res = bench("mini", ours, peer, reps)
    res["mini_source"] = source
    out["results"].append(res)
    out["goal_met"] = all(r["table_ratio"] <= 1.5 for r in out["results"])
    out["machine"] = machine()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
