"""Harvest throughput: tokens/s of `lenscope.records.harvest` over plain forward tokens/s.

Same model, same tokens, same process and threads. Models: `mini` (with a random TopK SAE of
2048 latents at blocks.2.hook_resid_post; a random stand-in of mini's shape when mini is not
trained yet), without and with that SAE, and a GPT-2-small-sized random model (neurons and
heads; output-token effects off). The forward baseline is the model alone (an SAE's encode is
extra work of the harvest). The harvest rate is the streaming rate (forwards + every statistic +
shard saves); the end-to-end time adds calibration, output-token effects and writing Parquet. Also the latency of one node's record and of
a token search through DuckDB. Goal: ratio >= 0.7. Prints one JSON object.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from lenscope import HookedTransformer, ModelConfig
from lenscope.errors import LenscopeError
from lenscope.records import HarvestConfig, Records, harvest
from lenscope.sae import SAEConfig, SparseAutoencoder


def mini() -> tuple[HookedTransformer, np.ndarray, str]:
    try:
        from lenscope import load_model

        m = load_model("mini").eval()
        from lenscope.train.prepare import prepare_data

        stream = np.asarray(
            prepare_data((), m.cfg.d_vocab, progress=False, log=lambda _: None).train
        )
        return m, stream, "mini"
    except (LenscopeError, OSError):
        cfg = ModelConfig(
            n_layers=4,
            d_model=256,
            n_heads=8,
            d_vocab=4096,
            n_ctx=256,
            d_mlp=1024,
            tie_embeddings=True,
            name="mini-shaped-random",
        )
        rng = np.random.default_rng(0)
        return HookedTransformer(cfg).eval(), rng.integers(0, 4096, 1 << 20), "mini-shaped random"


def gpt2_small() -> tuple[HookedTransformer, np.ndarray, str]:
    cfg = ModelConfig(
        n_layers=12,
        d_model=768,
        n_heads=12,
        d_vocab=50257,
        n_ctx=1024,
        d_mlp=3072,
        name="gpt2-small-random",
    )
    rng = np.random.default_rng(0)
    return HookedTransformer(cfg).eval(), rng.integers(0, 50257, 1 << 16), "gpt2-small-sized random"


def measure(
    model: HookedTransformer,
    stream: np.ndarray,
    name: str,
    ctx: int,
    batch_rows: int,
    batches: int,
    saes: list[Any],
    effects: bool = True,
) -> dict[str, Any]:
    n_rows = batch_rows * batches
    rows = np.asarray(stream[: n_rows * ctx], dtype=np.int64).reshape(n_rows, ctx)
    toks = torch.from_numpy(rows)
    with torch.no_grad():
        model(toks[:batch_rows])  # warm up
        t0 = time.perf_counter()
        for i in range(0, n_rows, batch_rows):
            model(toks[i : i + batch_rows])
        fwd = rows.size / (time.perf_counter() - t0)
    cfg = HarvestConfig(
        n_tokens=rows.size, ctx=ctx, batch_rows=batch_rows, shard_rows=n_rows, effects=effects
    )
    with tempfile.TemporaryDirectory(prefix="lenscope-bench-harvest-") as d:
        t0 = time.perf_counter()
        res = harvest(
            model,
            Path(d) / "rec",
            saes=saes,
            config=cfg,
            corpus=rows.reshape(-1),
            progress=False,
            log=lambda _: None,
        )
        wall = time.perf_counter() - t0
        recs = Records(Path(d) / "rec")
        ids = recs.node_ids()
        pick = [ids[i] for i in np.random.default_rng(0).choice(len(ids), 20, replace=False)]
        recs.node(pick[0])
        lat = []
        for nid in pick:
            t1 = time.perf_counter()
            recs.node(nid)
            lat.append((time.perf_counter() - t1) * 1000)
        t1 = time.perf_counter()
        recs.search_tokens(recs.vocab[int(rows[0, 1])])
        search_ms = (time.perf_counter() - t1) * 1000
        size = sum(f.stat().st_size for f in (Path(d) / "rec").glob("*.parquet"))
    return {
        "model": name,
        "saes": len(saes),
        "effects": effects,
        "nodes": res.n_nodes,
        "tokens": int(rows.size),
        "forward_tokens_per_s": round(fwd, 1),
        "harvest_tokens_per_s": round(res.tokens_per_s, 1),
        "ratio": round(res.tokens_per_s / fwd, 3),
        "end_to_end_s": round(wall, 2),
        "node_record_ms_median": round(statistics.median(lat), 2),
        "token_search_ms": round(search_ms, 2),
        "parquet_mb": round(size / 1e6, 2),
    }


def main() -> None:
    torch.manual_seed(0)
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "goal_ratio": 0.7}
    m, stream, name = mini()
    out["mini"] = measure(m, stream, name, ctx=256, batch_rows=16, batches=12, saes=[])
    sae = SparseAutoencoder(
        SAEConfig(d_in=m.cfg.d_model, d_sae=2048, k=32, hook_name="blocks.2.hook_resid_post")
    )
    out["mini_with_sae"] = measure(m, stream, name, 256, 16, 12, saes=[sae.eval()])
    g, stream, name = gpt2_small()
    # output-token effects of 37k neurons x 50257 tokens take minutes on a CPU: timed apart
    out["gpt2_small"] = measure(g, stream, name, 256, 4, 3, saes=[], effects=False)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
