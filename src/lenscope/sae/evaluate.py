"""`evaluate_sae`: the TopK paper's measures of an SAE on held-out tokens.

- fvu: sum |x - x_hat|^2 / sum |x - mean x|^2 over held-out tokens (normalised MSE); mse per dim.
- l0: mean active latents per token; dead: latents that never fire in the N evaluated tokens.
- density: histogram of log10(firing frequency) of the live latents.
- downstream: next-token cross-entropy with the activation replaced by the reconstruction
  (ce_sae), left alone (ce_clean), zeroed (ce_zero) or set to its mean over the evaluated tokens
  (ce_mean: the first position of every window gets the mean over first positions, the others the
  mean over the others; the first position is an attention sink whose residual is unlike the rest,
  and one mean over both put a sink-sized vector at every position); loss_recovered = (ce_zero - ce_sae) / (ce_zero - ce_clean) and the same against mean
  ablation; kl_sae = mean over positions of KL(clean || spliced) next-token distributions.
- ablation sparsity (see `lenscope.sae.ablation`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lenscope.data import iter_eval_batches
from lenscope.data.stream import TokenArray
from lenscope.errors import InputError
from lenscope.jsonable import JsonResult
from lenscope.model import HookedTransformer
from lenscope.model.capture import capture
from lenscope.sae.ablation import AblationSparsity, ablation_sparsity
from lenscope.sae.dictionary import Dictionary, check_compatible, splice
from lenscope.sae.model import SparseAutoencoder


@dataclass
class DensityHistogram(JsonResult):
    edges: list[float]  # log10 firing frequency bin edges
    counts: list[int]  # live latents per bin
    dead: int  # latents that never fired (not in the bins)


@dataclass
class SAEEvalResult(JsonResult):
    model: str
    hook_name: str
    architecture: str
    d_sae: int
    k: int | None
    n_tokens: int
    fvu: float
    mse: float
    l0: float
    dead_latents: int
    dead_fraction: float
    dead_window_tokens: int
    density: DensityHistogram
    ce_clean: float
    ce_sae: float
    ce_zero: float
    ce_mean: float
    loss_recovered: float
    loss_recovered_mean: float
    kl_sae: float
    kl_zero: float
    ablation: AblationSparsity | None = None
    plots: list[str] = field(default_factory=list)


def _replace(value: Tensor) -> Any:
    def fn(x: Tensor, _hook: Any) -> Tensor:
        return value.reshape(x.shape).to(x.dtype)

    return fn


def _position_means(first: Tensor, rest: Tensor, shape: torch.Size) -> Tensor:
    """[batch * pos, d]: `first` at each window's first position, `rest` elsewhere."""
    out = rest.expand(shape[0], shape[1], rest.shape[0]).clone()
    out[:, 0] = first
    return out.reshape(-1, rest.shape[0])


def _nll_sum(model: HookedTransformer, logits: Tensor, tokens: Tensor) -> float:
    n = tokens.shape[0] * (tokens.shape[1] - 1)
    return float(model.loss(logits, tokens)) * n


def _kl_sum(clean: Tensor, other: Tensor) -> float:
    p = clean.double().log_softmax(-1)
    q = other.double().log_softmax(-1)
    return float((p.exp() * (p - q)).sum())


@torch.no_grad()
def evaluate_sae(
    model: HookedTransformer,
    sae: SparseAutoencoder,
    tokens: TokenArray,
    *,
    n_tokens: int = 65536,
    ctx: int | None = None,
    batch_size: int = 8,
    ablation_samples: int = 32,
    ablation_window: int = 16,
    strict: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> SAEEvalResult:
    """Evaluate `sae` on the first `n_tokens` tokens (whole windows) of a held-out stream."""
    check_compatible(model, Dictionary.of(sae), strict)
    ctx = ctx or model.cfg.n_ctx
    if ctx < 2:
        raise InputError("evaluation needs windows of at least 2 tokens")
    max_batches = max(1, math.ceil(n_tokens / (ctx * batch_size)))
    batches = list(iter_eval_batches(tokens, batch_size, ctx, max_batches))
    hook = sae.cfg.hook_name
    dev = model.device
    bar = _bar(progress)
    task = bar.add_task("evaluating", total=2 * len(batches))
    bar.start()
    try:
        out = _evaluate(model, sae, batches, hook, dev, lambda: bar.advance(task))
    finally:
        bar.stop()
    abl = None
    if ablation_samples > 0:
        abl = ablation_sparsity(
            model, sae, batches[0].to(dev), n=ablation_samples, window=ablation_window, seed=seed
        )
    out.ablation = abl
    return out


def _bar(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("[bold]sae eval[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def _evaluate(
    model: HookedTransformer,
    sae: SparseAutoencoder,
    batches: list[Tensor],
    hook: str,
    dev: torch.device,
    tick: Any,
) -> SAEEvalResult:
    # pass 1: the mean activation (for mean ablation): first positions apart from the rest
    total = torch.zeros(2, sae.cfg.d_in, dtype=torch.float64, device="cpu")
    n_first = n_rest = 0
    for b in batches:
        a = capture(model, b.to(dev), hook).double().cpu()
        total += torch.stack([a[:, 0].sum(0), a[:, 1:].sum((0, 1))])
        n_first += a.shape[0]
        n_rest += a.shape[0] * (a.shape[1] - 1)
        tick()
    means = total / torch.tensor([[n_first], [n_rest]], dtype=torch.float64, device="cpu")
    mean_first, mean_rest = means.to(device=dev, dtype=sae.W_enc.dtype)
    # pass 2: reconstruction and downstream loss
    d_sae = sae.cfg.d_sae
    fires = torch.zeros(d_sae, dtype=torch.long, device="cpu")
    sse = sx2 = l0 = 0.0
    sx = torch.zeros(sae.cfg.d_in, dtype=torch.float64, device=dev)
    nll = {"clean": 0.0, "sae": 0.0, "zero": 0.0, "mean": 0.0}
    kl_sae = kl_zero = 0.0
    n_pred = n_pos = 0
    for b in batches:
        b = b.to(dev)
        logits, cache = model.run_with_cache(b, names_filter=hook)
        raw = cache[hook]
        act = raw.reshape(-1, sae.cfg.d_in).to(sae.W_enc.dtype)
        codes, stats = sae.encode_codes(act)
        recon = sae.decode_codes(codes, stats)
        err = (act - recon).double()
        sse += float((err**2).sum())
        sx += act.double().sum(0)
        sx2 += float((act.double() ** 2).sum())
        active = codes.val != 0
        l0 += float(active.sum())
        fires += torch.bincount(codes.idx[active].cpu(), minlength=d_sae)
        variants = {
            "zero": torch.zeros_like(act),
            "mean": _position_means(mean_first, mean_rest, b.shape),
        }
        nll["clean"] += _nll_sum(model, logits, b)
        spliced = model.run_with_hooks(b, fwd_hooks=splice(sae, keep_error=False))
        nll["sae"] += _nll_sum(model, spliced, b)
        kl_sae += _kl_sum(logits, spliced)
        for name, value in variants.items():
            out = model.run_with_hooks(b, fwd_hooks=[(hook, _replace(value))])
            nll[name] += _nll_sum(model, out, b)
            if name == "zero":
                kl_zero += _kl_sum(logits, out)
        n_pred += b.shape[0] * (b.shape[1] - 1)
        n_pos += b.shape[0] * b.shape[1]
        tick()
    sst = sx2 - float((sx**2).sum()) / n_pos
    ce = {k: v / n_pred for k, v in nll.items()}
    dead = int((fires == 0).sum())
    return SAEEvalResult(
        model=model.cfg.name,
        hook_name=hook,
        architecture=sae.cfg.architecture,
        d_sae=d_sae,
        k=sae.cfg.k,
        n_tokens=n_pos,
        fvu=sse / sst if sst > 0 else float("nan"),
        mse=sse / (n_pos * sae.cfg.d_in),
        l0=l0 / n_pos,
        dead_latents=dead,
        dead_fraction=dead / d_sae,
        dead_window_tokens=n_pos,
        density=density_histogram(fires, n_pos),
        ce_clean=ce["clean"],
        ce_sae=ce["sae"],
        ce_zero=ce["zero"],
        ce_mean=ce["mean"],
        loss_recovered=_recovered(ce["zero"], ce["sae"], ce["clean"]),
        loss_recovered_mean=_recovered(ce["mean"], ce["sae"], ce["clean"]),
        kl_sae=kl_sae / n_pos,
        kl_zero=kl_zero / n_pos,
    )


def _recovered(ablated: float, spliced: float, clean: float) -> float:
    gap = ablated - clean
    return (ablated - spliced) / gap if gap != 0 else float("nan")


def density_histogram(fires: Tensor, n_tokens: int, bins: int = 30) -> DensityHistogram:
    """Histogram of log10(fires / n_tokens) over latents that fired at least once."""
    live = fires[fires > 0].double() / n_tokens
    lo = math.log10(1 / n_tokens)
    edges = np.linspace(lo, 0.0, bins + 1)
    counts, _ = (
        np.histogram(np.log10(live.numpy()), bins=edges)
        if live.numel()
        else (np.zeros(bins, dtype=np.int64), None)
    )
    return DensityHistogram(
        edges=[float(e) for e in edges],
        counts=[int(c) for c in counts],
        dead=int((fires == 0).sum()),
    )
