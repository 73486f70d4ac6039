"""Pictures of SAE results (matplotlib, Agg): PNG + SVG beside each other; returns the paths."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lenscope.sae.evaluate import SAEEvalResult
    from lenscope.sae.experiments import ExperimentResult


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.4, 4.2))


def _save(fig: Any, out: Path, stem: str) -> list[str]:
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        p = out / f"{stem}.{ext}"
        fig.savefig(p, dpi=130, bbox_inches="tight")
        paths.append(str(p))
    plt.close(fig)
    return paths


def plot_eval(res: SAEEvalResult, out: Path) -> list[str]:
    """The latent density histogram and the downstream loss bars."""
    fig, ax = _figure()
    e, c = res.density.edges, res.density.counts
    ax.bar(e[:-1], c, width=[b - a for a, b in itertools.pairwise(e)], align="edge")
    ax.set_xlabel("log10 firing frequency")
    ax.set_ylabel("latents")
    ax.set_title(
        f"{res.model} {res.hook_name}: {res.architecture}, {res.d_sae} latents, "
        f"{res.dead_latents} dead in {res.dead_window_tokens:,} tokens",
        fontsize=9,
    )
    paths = _save(fig, out, "density")
    fig, ax = _figure()
    names = ["clean", "SAE spliced", "mean-ablated", "zero-ablated"]
    vals = [res.ce_clean, res.ce_sae, res.ce_mean, res.ce_zero]
    ax.bar(names, vals, color=["#4c72b0", "#55a868", "#dd8452", "#c44e52"])
    ax.set_ylabel("next-token cross-entropy (nats)")
    ax.set_title(
        f"loss recovered {100 * res.loss_recovered:.1f}% (vs zero), "
        f"{100 * res.loss_recovered_mean:.1f}% (vs mean); KL {res.kl_sae:.4f}",
        fontsize=9,
    )
    return paths + _save(fig, out, "downstream_loss")


def plot_experiment(res: ExperimentResult, out: Path) -> list[str]:
    fig, ax = _figure()
    if res.name == "frontier":
        for arch, marker in (("topk", "o-"), ("relu", "s--"), ("batchtopk", "^-")):
            pts = sorted((r.l0, r.fvu) for r in res.runs if r.architecture == arch)
            if pts:
                ax.plot(*zip(*pts, strict=True), marker, label=arch)
        ax.set_xscale("log")
        ax.set_xlabel("L0 (active latents per token, held out)")
        ax.set_ylabel("normalised MSE (FVU, held out)")
    elif res.name == "auxk":
        for r in res.runs:
            xs = [h["tokens"] for h in r.history]
            ax.plot(xs, [100 * h["dead_fraction"] for h in r.history], label=r.label)
        ax.set_xlabel("training tokens")
        ax.set_ylabel("dead latents (%)")
    else:
        for k in sorted({r.k for r in res.runs if r.k is not None}):
            pts = sorted((r.d_sae, r.fvu) for r in res.runs if r.k == k)
            ax.plot(*zip(*pts, strict=True), "o-", label=f"k={k}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("latents")
        ax.set_ylabel("normalised MSE (FVU, held out)")
    ax.set_title(f"{res.model} {res.hook_name}: {res.name}", fontsize=9)
    ax.legend()
    return _save(fig, out, res.name)
