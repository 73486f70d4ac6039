"""Training a tuned lens: minimise KL(final ‖ lens) at every block boundary, the model frozen.

Each step draws a batch of random windows (`sample_batch`, deterministic in seed and step), runs
the model once without gradients to collect every boundary's residual and the final log-probs,
then for each translator adds KL(final ‖ unembed(ln_final(translate(resid)))) to the loss. The
translators are independent, so each boundary's loss is backpropagated on its own (memory for one
[batch, ctx, vocab] at a time). Adam with a short warmup and cosine decay.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy.typing as npt
import torch

from lenscope.data import sample_batch
from lenscope.errors import InputError
from lenscope.jsonable import JsonResult
from lenscope.lens.boundaries import collect_residuals, lens_boundaries
from lenscope.lens.tuned import TunedLens
from lenscope.lens.unembed import project
from lenscope.model.transformer import HookedTransformer

Progress = Callable[[int, float], None]


@dataclass
class TunedTraining(JsonResult):
    """What a tuned-lens training run did; `losses[s]` is step s's KL summed over translators."""

    steps: int
    batch_size: int
    ctx: int
    lr: float
    seed: int
    tokens: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    final_kl: list[float] = field(default_factory=list)  # per translator, mean of the last steps


def _lr_at(step: int, steps: int, lr: float) -> float:
    warm = max(1, steps // 20)
    if step < warm:
        return lr * (step + 1) / warm
    frac = (step - warm) / max(1, steps - warm)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def train_tuned_lens(
    model: HookedTransformer,
    tokens: npt.NDArray[Any],
    *,
    steps: int = 400,
    batch_size: int = 8,
    ctx: int | None = None,
    lr: float = 2e-3,
    seed: int = 0,
    lens: TunedLens | None = None,
    progress: Progress | None = None,
) -> tuple[TunedLens, TunedTraining]:
    """Train (or continue training) a tuned lens for `model` on a token stream."""
    if steps < 1 or batch_size < 1:
        raise InputError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    if not 0 < lr < 1:
        raise InputError(f"lr must lie in (0, 1), got {lr}")
    if model.cfg.n_layers == 0:
        raise InputError(f"{model.cfg.name} has no layers: its logit lens is its output already")
    ctx = min(model.cfg.n_ctx, 128) if ctx is None else ctx
    if not 2 <= ctx <= model.cfg.n_ctx:
        raise InputError(f"ctx must lie in [2, {model.cfg.n_ctx}], got {ctx}")
    lens = TunedLens.for_model(model) if lens is None else lens
    lens.check_model(model)
    bounds = lens_boundaries(model.cfg)
    opt = torch.optim.Adam(lens.parameters(), lr=lr)
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    t0 = time.perf_counter()
    losses: list[float] = []
    recent: list[list[float]] = []
    try:
        for step in range(steps):
            batch = sample_batch(tokens, batch_size, ctx, seed=seed, step=step).to(model.device)
            resids = collect_residuals(model, batch, bounds)
            with torch.no_grad():
                final_logp = project(model, resids[-1], bounds[-1]).float().log_softmax(-1)
                final_p = final_logp.exp()
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, steps, lr)
            opt.zero_grad(set_to_none=True)
            per = []
            for b, r in zip(bounds[:-1], resids[:-1], strict=True):
                logp = project(model, r, b, lens).float().log_softmax(-1)
                kl = (final_p * (final_logp - logp)).sum(-1).mean()
                kl.backward()
                per.append(float(kl.detach()))
            opt.step()
            losses.append(sum(per))
            recent = [*recent[-9:], per]
            if progress is not None:
                progress(step + 1, losses[-1])
    finally:
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)
        model.train(was_training)
    final_kl = [sum(col) / len(col) for col in zip(*recent, strict=True)]
    return lens, TunedTraining(
        steps=steps,
        batch_size=batch_size,
        ctx=ctx,
        lr=lr,
        seed=seed,
        tokens=steps * batch_size * ctx,
        seconds=time.perf_counter() - t0,
        losses=losses,
        final_kl=final_kl,
    )
