"""Harvest throughput: tokens/s of the records harvest over plain forward tokens/s.

Same model, same tokens, same process. Forward passes and harvest batches are timed interleaved,
batch by batch, so that load drift on a shared machine hits both alike; `ratio` is over all
batches, `ratio_steady` over the second half (the top-k sets have filled, as in any real
harvest of more than a few batches). The harvest batch does everything a harvest does per batch
(forward with hooks, moments, density, extrema, top-k, random and quantile samples, histograms,
windows, attention rows); the forward baseline is the model alone, logits included (an SAE's
encode is extra work of the harvest). A harvest stops after the last block it reads, so
`ratio_vs_stopped` also compares with a forward stopped there: the cost of the bookkeeping
alone. With an SAE, `ratio_vs_forward_with_encode` compares with the forward a user runs to read
the latents (the model's forward plus the SAE's encode at its hook). Then one full `harvest()`
on the same tokens gives the end-to-end time (calibration,
shard saves, output-token effects, Parquet) and the DuckDB latency of one node's record and of a
token search.

Models: `mini` (a random stand-in of mini's shape when mini is not trained yet), also with a
random TopK SAE of 2048 latents at blocks.2.hook_resid_post, and a GPT-2-small-sized random model
(neurons and heads), each at every thread count of `--threads` (default 1,2). The machine's
load average is recorded before and after: on a machine shared with other jobs, many small
multi-threaded kernels suffer far more than the model's big matmuls.
Goal: ratio >= 0.7. Prints one JSON object.

    python benchmarks/harvest.py [--threads 1,2] [--no-records] [--wide-sae 16384] [--device cuda]

On `--device cuda` the models and SAEs run on the GPU and every clock reading synchronises it.
"""

from __future__ import annotations

import lenscope  # noqa: F401  before torch: large tensors on huge pages (lenscope.runtime)

# isort: split

import argparse
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import common
from common import bench_device, machine, sync

from lenscope import HookedTransformer, ModelConfig
from lenscope.errors import LenscopeError
from lenscope.records import HarvestConfig, Records, harvest
from lenscope.records.config import dictionaries, node_groups
from lenscope.sae import SAEConfig, SparseAutoencoder

H = importlib.import_module("lenscope.records.harvest")


def clock() -> float:
    """Seconds, after the GPU's queued work (if any) has finished."""
    sync()
    return time.perf_counter()


def mini() -> tuple[HookedTransformer, np.ndarray, str]:
    try:
        from lenscope import load_model
        from lenscope.data import prepare_data

        m = load_model("mini").eval()
        ds = prepare_data((), m.cfg.d_vocab, progress=False, log=lambda _: None)
        return m, np.asarray(ds.train), "mini"
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


def encoding_hook(sae: Any) -> Any:
    """A forward hook that encodes the activation with `sae` (as a user reading latents would)
    and passes the activation on unchanged."""

    def hook(x: torch.Tensor, _hook: Any) -> torch.Tensor:
        sae.encode(x)
        return x

    return hook


@torch.no_grad()
def interleaved(
    model: HookedTransformer, rows: np.ndarray, batch_rows: int, saes: list[Any]
) -> dict[str, Any]:
    cfg = HarvestConfig(n_tokens=rows.size, ctx=rows.shape[1], batch_rows=batch_rows)
    dics = dictionaries(saes)
    run = H._Run(model, node_groups(model, dics), dics, cfg, rows.shape[1])
    run.calibrate(rows[: cfg.calib_rows])
    toks = torch.from_numpy(rows).to(model.device)
    encode = [(d.hook_in, encoding_hook(d)) for d in dics]
    model(toks[:batch_rows])  # warm up
    model(toks[:batch_rows], stop_at_layer=run.stop)
    fwd, stopped, hv, enc = [], [], [], []
    for r in range(0, rows.shape[0], batch_rows):
        t0 = clock()
        model(toks[r : r + batch_rows])
        t1 = clock()
        model(toks[r : r + batch_rows], stop_at_layer=run.stop)
        t2 = clock()
        run.batch(rows[r : r + batch_rows], r)
        t3 = clock()
        if encode:
            with model.hooks(fwd=encode):
                model(toks[r : r + batch_rows])
            enc.append(clock() - t3)
        hv.append(t3 - t2)
        stopped.append(t2 - t1)
        fwd.append(t1 - t0)
    half = len(fwd) // 2
    n = batch_rows * rows.shape[1]
    extra = {"ratio_vs_forward_with_encode": round(sum(enc) / sum(hv), 3)} if enc else {}
    return {
        **extra,
        "threads": torch.get_num_threads(),
        "forward_tokens_per_s": round(n * len(fwd) / sum(fwd), 1),
        "harvest_tokens_per_s": round(n * len(hv) / sum(hv), 1),
        "ratio": round(sum(fwd) / sum(hv), 3),
        "ratio_steady": round(sum(fwd[half:]) / sum(hv[half:]), 3),
        "ratio_vs_stopped": round(sum(stopped) / sum(hv), 3),
        "load_average": round(os.getloadavg()[0], 2),
    }


def end_to_end(
    model: HookedTransformer, rows: np.ndarray, batch_rows: int, saes: list[Any], effects: bool
) -> dict[str, Any]:
    cfg = HarvestConfig(
        n_tokens=rows.size,
        ctx=rows.shape[1],
        batch_rows=batch_rows,
        shard_rows=max(batch_rows, 128 // batch_rows * batch_rows),
        effects=effects,
    )
    with tempfile.TemporaryDirectory(prefix="lenscope-bench-harvest-") as d:
        t0 = clock()
        res = harvest(
            model,
            Path(d) / "rec",
            saes=saes,
            config=cfg,
            corpus=rows.reshape(-1),
            progress=False,
            log=lambda _: None,
        )
        wall = clock() - t0
        recs = Records(Path(d) / "rec")
        ids = recs.node_ids()
        pick = [ids[i] for i in np.random.default_rng(0).choice(len(ids), 20, replace=False)]
        recs.node(pick[0])
        lat = []
        for nid in pick:
            t1 = clock()
            recs.node(nid)
            lat.append((clock() - t1) * 1000)
        t1 = clock()
        recs.search_tokens(recs.vocab[int(rows[0, 1])])
        search_ms = (clock() - t1) * 1000
        size = sum(f.stat().st_size for f in (Path(d) / "rec").glob("*.parquet"))
    return {
        "nodes": res.n_nodes,
        "tokens": int(rows.size),
        "effects": effects,
        "end_to_end_s": round(wall, 2),
        "node_record_ms_median": round(statistics.median(lat), 2),
        "token_search_ms": round(search_ms, 2),
        "parquet_mb": round(size / 1e6, 2),
    }


class _DenseLatents(SparseAutoencoder):
    """The same SAE with its sparse encoding hidden: the harvest reads its latents densely."""

    def encode_topk(self, x: torch.Tensor) -> None:
        return None


def wide_sae(model: HookedTransformer, rows: np.ndarray, d_sae: int) -> dict[str, Any]:
    """Harvest tokens/s with a wide TopK SAE (k 32): its latents as sparse rows (the default)
    and densely, interleaved batch by batch, plus the plain forward."""
    cfg = SAEConfig(d_in=model.cfg.d_model, d_sae=d_sae, k=32, hook_name="blocks.2.hook_resid_post")
    sae = SparseAutoencoder(cfg, device=model.device).eval()
    dense = _DenseLatents(cfg, device=model.device).eval()
    dense.load_state_dict(sae.state_dict())
    runs = {}
    for name, s in (("sparse", sae), ("dense", dense)):
        hc = HarvestConfig(n_tokens=rows.size, ctx=rows.shape[1], batch_rows=16)
        run = H._Run(model, node_groups(model, [s]), [s], hc, rows.shape[1])
        run.calibrate(rows[: hc.calib_rows])
        runs[name] = run
    toks = torch.from_numpy(rows).to(model.device)
    spent = {"sparse": 0.0, "dense": 0.0, "forward": 0.0}
    with torch.no_grad():
        for r in range(0, rows.shape[0], 16):
            for name, run in runs.items():
                t0 = clock()
                run.batch(rows[r : r + 16], r)
                spent[name] += clock() - t0
            t0 = clock()
            model(toks[r : r + 16])
            spent["forward"] += clock() - t0
    n = rows.size
    return {
        "d_sae": d_sae,
        "threads": torch.get_num_threads(),
        "forward_tokens_per_s": round(n / spent["forward"], 1),
        "sparse_tokens_per_s": round(n / spent["sparse"], 1),
        "dense_tokens_per_s": round(n / spent["dense"], 1),
        "sparse_speedup": round(spent["dense"] / spent["sparse"], 2),
    }


def main() -> None:
    dev = bench_device()
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2", help="thread counts to measure, comma-separated")
    ap.add_argument("--no-records", action="store_true", help="skip the end-to-end harvests")
    ap.add_argument(
        "--wide-sae",
        type=int,
        default=0,
        help="also harvest mini with a TopK SAE of this many latents, sparse and dense",
    )
    args = ap.parse_args()
    counts = [int(t) for t in args.threads.split(",")]
    torch.manual_seed(0)
    out: dict[str, Any] = {"goal_ratio": 0.7, "load_average_before": os.getloadavg()}
    m, stream, name = mini()
    m = m.to(dev)
    rows = np.asarray(stream[: 16 * 16 * 256], dtype=np.int64).reshape(-1, 256)
    sae = SparseAutoencoder(
        SAEConfig(d_in=m.cfg.d_model, d_sae=2048, k=32, hook_name="blocks.2.hook_resid_post"),
        device=dev,
    ).eval()
    g, gstream, gname = gpt2_small()
    g = g.to(dev)
    out["device"] = str(common.DEVICE)
    grows = np.asarray(gstream[: 6 * 4 * 256], dtype=np.int64).reshape(-1, 256)
    for t in counts:
        torch.set_num_threads(t)
        out[f"mini_{t}_threads"] = {"model": name, **interleaved(m, rows, 16, [])}
        out[f"mini_with_sae_{t}_threads"] = {
            "model": name,
            "d_sae": 2048,
            **interleaved(m, rows, 16, [sae]),
        }
        out[f"gpt2_small_{t}_threads"] = {"model": gname, **interleaved(g, grows, 4, [])}
    if args.wide_sae:
        torch.set_num_threads(counts[0])
        out["mini_with_wide_sae"] = wide_sae(m, rows[:64], args.wide_sae)
    if not args.no_records:
        torch.set_num_threads(counts[0])
        out["mini_records"] = end_to_end(m, rows[:64], 16, [sae], effects=True)
        # effects of 37k neurons x 50257 tokens cost minutes on a CPU, so the records here skip them
        out["gpt2_small_records"] = end_to_end(g, grows[:8], 4, [], effects=False)
    out["load_average_after"] = os.getloadavg()
    out["machine"] = machine()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
