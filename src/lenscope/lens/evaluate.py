"""Logit lens vs tuned lens on held-out text: cross-entropy, entropy and KL per boundary.

For every boundary and every position of consecutive held-out windows: cross-entropy of the
actual next token under the lens, the lens distribution's entropy, and KL(final ‖ lens); each
averaged over positions (cross-entropy over positions that have a next token). The last boundary
of both lenses is the model itself (KL 0, cross-entropy = the model's loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt
import torch

from lenscope.data import iter_eval_batches
from lenscope.errors import InputError
from lenscope.jsonable import JsonResult
from lenscope.lens.boundaries import collect_residuals, lens_boundaries
from lenscope.lens.tuned import TunedLens
from lenscope.lens.unembed import project
from lenscope.model.transformer import HookedTransformer
from lenscope.model.view import isolated

METRICS = ("ce", "entropy", "kl")


@dataclass
class LensCurves(JsonResult):
    """One lens's per-boundary means (nats)."""

    ce: list[float]
    entropy: list[float]
    kl: list[float]


@dataclass
class LensEval(JsonResult):
    model: str
    boundaries: list[str]
    tokens: int
    logit: LensCurves
    tuned: LensCurves | None

    def tuned_beats_logit(self) -> list[bool]:
        """Per boundary but the last: is the tuned lens's KL below the logit lens's?"""
        if self.tuned is None:
            return []
        return [t < g for t, g in zip(self.tuned.kl[:-1], self.logit.kl[:-1], strict=True)]


@torch.no_grad()
@isolated
def evaluate_lenses(
    model: HookedTransformer,
    tokens: npt.NDArray[Any],
    tuned: TunedLens | None = None,
    *,
    batch_size: int = 8,
    ctx: int | None = None,
    max_batches: int = 16,
) -> LensEval:
    """Mean CE, entropy and KL(final ‖ lens) per boundary over held-out `tokens`."""
    ctx = min(model.cfg.n_ctx, 128) if ctx is None else ctx
    if not 2 <= ctx <= model.cfg.n_ctx:
        raise InputError(f"ctx must lie in [2, {model.cfg.n_ctx}], got {ctx}")
    if tuned is not None:
        tuned.check_model(model)
    bounds = lens_boundaries(model.cfg)
    lenses: list[TunedLens | None] = [None] if tuned is None else [None, tuned]
    sums = torch.zeros(
        len(lenses), len(METRICS), len(bounds), dtype=torch.float64, device=model.device
    )  # summed on the model's device: no host round trip per boundary
    n_tok = n_ce = 0
    for batch in iter_eval_batches(tokens, batch_size, ctx, max_batches):
        batch = batch.to(model.device)
        resids = collect_residuals(model, batch, bounds)
        final_logp = project(model, resids[-1], bounds[-1]).float().log_softmax(-1)
        final_neg_h = (final_logp.exp() * final_logp).sum(-1)
        nxt = batch[:, 1:, None]
        for li, lens in enumerate(lenses):
            for bi, (b, r) in enumerate(zip(bounds, resids, strict=True)):
                logp = project(model, r, b, lens).float().log_softmax(-1)
                ce = -logp[:, :-1].gather(-1, nxt).sum()
                ent = -(logp.exp() * logp).sum()
                kl = (final_neg_h - (final_logp.exp() * logp).sum(-1)).sum()
                sums[li, :, bi] += torch.stack([ce, ent, kl]).double()
        n_tok += batch.numel()
        n_ce += batch.shape[0] * (batch.shape[1] - 1)
    if n_tok == 0:
        raise InputError("no held-out text to evaluate on; give a longer corpus")
    curves = [
        LensCurves(
            (s[0] / n_ce).tolist(), (s[1] / n_tok).tolist(), (s[2] / n_tok).clamp(min=0).tolist()
        )
        for s in sums
    ]
    return LensEval(
        model=model.cfg.name,
        boundaries=[b.label for b in bounds],
        tokens=n_tok,
        logit=curves[0],
        tuned=curves[1] if tuned is not None else None,
    )


def plot_lens_eval(ev: LensEval, out_dir: Path | str, stem: str = "lens_eval") -> list[Path]:
    """Three panels (CE, entropy, KL per boundary), logit vs tuned lens; PNG and SVG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    x = list(range(len(ev.boundaries)))
    titles = {
        "ce": "cross-entropy (nats)",
        "entropy": "entropy (nats)",
        "kl": "KL(final ‖ lens) (nats)",
    }
    for ax, metric in zip(axes, METRICS, strict=True):
        ax.plot(x, getattr(ev.logit, metric), "o-", label="logit lens", color="#7b6fb0")
        if ev.tuned is not None:
            ax.plot(x, getattr(ev.tuned, metric), "s-", label="tuned lens", color="#d1793b")
        ax.set_title(titles[metric], fontsize=10)
        ax.set_xticks(x)
        ax.set_xticklabels(ev.boundaries, rotation=45, fontsize=8)
        ax.grid(alpha=0.3)
        if metric == "kl":
            ax.set_yscale("symlog", linthresh=1e-2)
            top = max(ev.logit.kl + (ev.tuned.kl if ev.tuned is not None else []))
            ax.set_ylim(0, max(top, 1e-2) * 2)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{ev.model}: lenses on {ev.tokens:,} held-out tokens", fontsize=11)
    fig.tight_layout()
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in ("png", "svg"):
        p = d / f"{stem}.{fmt}"
        fig.savefig(p, dpi=150 if fmt == "png" else None)
        paths.append(p)
    return paths
