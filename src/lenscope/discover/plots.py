"""Faithfulness curves of several methods on one plot (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from lenscope.discover.result import DiscoverResult


def faithfulness_figure(results: Sequence[DiscoverResult]) -> Figure:
    """The circuit alone as a fraction of the full model against edges kept, one line per
    method; the title names the model, task, ablation and metric."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for r in results:
        xs = [max(n, 0.8) for n, _ in r.faithfulness.curve]  # 0 edges drawn at the left edge
        ys = [v for _, v in r.faithfulness.curve]
        label = f"{r.method} (area {r.faithfulness.area:.2f})"
        ax.plot(xs, ys, marker=".", label=label)
    ax.set_xscale("log")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.axhline(0.9, color="grey", lw=0.5, ls=":")
    ax.axhline(0.8, color="grey", lw=0.5, ls=":")
    ax.set_xlabel("edges kept (top n by |score|)")
    ax.set_ylabel("circuit alone / full model")
    if results:
        r0 = results[0]
        ablations = sorted({r.ablation for r in results})
        ax.set_title(
            f"{r0.model} · {r0.task}: faithfulness, ablation {', '.join(ablations)}, "
            f"metric {r0.metric}",
            fontsize=10,
        )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_faithfulness(results: Sequence[DiscoverResult], out: Path, stem: str) -> list[Path]:
    """Write `out/stem.png` and `out/stem.svg`; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    fig = faithfulness_figure(results)
    paths = [out / f"{stem}.png", out / f"{stem}.svg"]
    for p in paths:
        fig.savefig(p, dpi=120)
    return paths
