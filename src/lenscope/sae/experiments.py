"""The TopK paper's experiments, small enough for a CPU in minutes.

- frontier: TopK over k vs ReLU + L1 over its coefficient: held-out normalised MSE against L0.
- auxk: the same TopK SAE trained with and without the AuxK loss: dead latents over training.
- scaling: TopK over latent counts and k: held-out normalised MSE.
Activations are computed once (a few blocks held in memory, cycled) so every run sees the same
data; each run is evaluated on held-out activations from the validation split.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from lenscope.data import TokenStream, iter_eval_batches
from lenscope.errors import InputError
from lenscope.jsonable import JsonResult
from lenscope.model import HookedTransformer
from lenscope.model.capture import capture
from lenscope.sae.buffer import LiveSource, MemorySource
from lenscope.sae.config import TrainConfig
from lenscope.sae.distributed import Comm
from lenscope.sae.model import SparseAutoencoder
from lenscope.sae.train import sae_config_for, train_sae

Log = Callable[[str], None]


@dataclass
class ExperimentRun(JsonResult):
    label: str
    architecture: str
    k: int | None
    d_sae: int
    l1_coefficient: float | None
    use_auxk: bool
    tokens: int
    fvu: float  # held out
    l0: float  # held out
    dead_fraction: float  # training window
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class ExperimentResult(JsonResult):
    name: str
    model: str
    hook_name: str
    train_tokens_per_run: int
    eval_tokens: int
    runs: list[ExperimentRun]
    plots: list[str] = field(default_factory=list)


@dataclass
class Setup:
    model: HookedTransformer
    hook: str
    source: MemorySource
    val: Tensor  # held-out activations [n, d_in]
    train: TrainConfig


def prepare(
    model: HookedTransformer,
    hook: str,
    streams: TokenStream,
    train: TrainConfig,
    *,
    blocks: int = 4,
    eval_tokens: int = 16384,
    log: Log = print,
) -> Setup:
    """Compute `blocks` training blocks and held-out activations once."""
    sae_cfg = sae_config_for(model, hook, k=1, d_sae=1)
    ctx = train.ctx or model.cfg.n_ctx
    live = LiveSource(
        model,
        hook,
        streams.train,
        sae_cfg.d_in,
        ctx=ctx,
        buffer_tokens=train.buffer_tokens,
        forward_batch=train.forward_batch,
        seed=train.seed,
    )
    parts = []
    for b in range(blocks):
        log(f"activations: block {b + 1}/{blocks} ({live.block_tokens:,} tokens)")
        parts.append(live.block(b))
    src = MemorySource(parts)
    n_batches = max(1, math.ceil(eval_tokens / (ctx * 8)))
    val = [
        capture(model, b.to(model.device), hook)
        for b in iter_eval_batches(streams.val, 8, ctx, n_batches)
    ]
    if not val:
        raise InputError("the validation split is too short for held-out evaluation")
    acts = torch.cat([v.reshape(-1, v.shape[-1]) for v in val]).cpu()
    return Setup(model, hook, src, acts, train)


@torch.no_grad()
def held_out(sae: SparseAutoencoder, acts: Tensor) -> tuple[float, float]:
    """(FVU, L0) of `sae` on held-out activations."""
    x = acts.to(sae.W_enc.dtype)
    codes, stats = sae.encode_codes(x)
    recon = sae.decode_codes(codes, stats)
    sse = float(((x - recon).double() ** 2).sum())
    sst = float(((x - x.mean(0)).double() ** 2).sum())
    return sse / sst, float((codes.val != 0).sum()) / x.shape[0]


def _run(
    setup: Setup,
    label: str,
    *,
    architecture: str,
    k: int | None,
    d_sae: int,
    l1: float | None = None,
    use_auxk: bool = True,
    log: Log = print,
) -> ExperimentRun:
    cfg = sae_config_for(setup.model, setup.hook, architecture=architecture, k=k, d_sae=d_sae)
    tc = replace(setup.train, use_auxk=use_auxk, l1_coefficient=l1 if l1 is not None else 1.0)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="lenscope-sae-exp-") as tmp:
        res = train_sae(
            cfg,
            tc,
            source=setup.source,
            save=False,
            fresh=True,
            progress=False,
            comm=Comm(),
            run_dir=Path(tmp),
            log=lambda _s: None,
        )
    assert res.sae is not None
    fvu, l0 = held_out(res.sae, setup.val)
    log(f"{label}: FVU {fvu:.4f}, L0 {l0:.1f}, dead {100 * res.dead_fraction:.1f}%")
    return ExperimentRun(
        label,
        architecture,
        cfg.k,
        d_sae,
        l1,
        use_auxk,
        res.tokens,
        fvu,
        l0,
        res.dead_fraction,
        time.time() - t0,
        res.history,
    )


def frontier(
    setup: Setup,
    *,
    d_sae: int,
    ks: Sequence[int] = (4, 8, 16, 32, 64),
    l1s: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0),
    log: Log = print,
) -> list[ExperimentRun]:
    runs = [_run(setup, f"topk k={k}", architecture="topk", k=k, d_sae=d_sae, log=log) for k in ks]
    runs += [
        _run(setup, f"relu l1={c:g}", architecture="relu", k=None, d_sae=d_sae, l1=c, log=log)
        for c in l1s
    ]
    return runs


def auxk_effect(setup: Setup, *, d_sae: int, k: int, log: Log = print) -> list[ExperimentRun]:
    return [
        _run(
            setup,
            f"{'with' if a else 'without'} AuxK",
            architecture="topk",
            k=k,
            d_sae=d_sae,
            use_auxk=a,
            log=log,
        )
        for a in (True, False)
    ]


def scaling(
    setup: Setup,
    *,
    latents: Sequence[int] = (256, 512, 1024, 2048),
    ks: Sequence[int] = (8, 16, 32),
    log: Log = print,
) -> list[ExperimentRun]:
    return [
        _run(setup, f"n={n} k={k}", architecture="topk", k=k, d_sae=n, log=log)
        for k in ks
        for n in latents
        if k <= n
    ]
