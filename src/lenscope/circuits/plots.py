"""Pictures of circuit results (matplotlib figures; `save_figure` writes PNG and SVG).

Every function takes a plain result object and returns a `Figure`, so notebooks show it inline
and the CLI writes it to files. Figures are built without pyplot (no global state, no GUI
backend): `matplotlib.figure.Figure` renders with Agg.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from lenscope.circuits.composition import CompositionScores
from lenscope.circuits.phase import PhaseCurve
from lenscope.circuits.tables import TokenTable, head_id


def save_figure(
    fig: Figure, out_dir: Path, stem: str, formats: Sequence[str] = ("png", "svg")
) -> list[Path]:
    """Write `out_dir/stem.png` and `.svg`; returns the paths and closes the figure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        p = out_dir / f"{stem}.{fmt}"
        fig.savefig(p, dpi=130 if fmt == "png" else None, bbox_inches="tight")
        paths.append(p)
    return paths


def composition_heatmap(scores: Sequence[CompositionScores], title: str = "") -> Figure:
    """One panel per mode: earlier heads (rows) x later heads (columns); NaN pairs blank."""
    L, H = scores[0].scores.shape[:2]
    src = [(lay, h) for lay in range(L - 1) for h in range(H)]
    dst = [(lay, h) for lay in range(1, L) for h in range(H)]
    width = 2.7 + 0.55 * len(dst) * len(scores)
    fig = Figure(figsize=(width, 1.6 + 0.45 * len(src)))
    axes = fig.subplots(1, len(scores), squeeze=False)
    vmax = max(float(np.nanmax(s.scores.cpu().numpy())) for s in scores) if src else 1.0
    for ax, s in zip(axes[0], scores, strict=True):
        grid = np.array([[s.score(a, b) for b in dst] for a in src]) if src else np.zeros((0, 0))
        im = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(dst)), [head_id(*d) for d in dst], rotation=90, fontsize=7)
        ax.set_yticks(range(len(src)), [head_id(*a) for a in src], fontsize=7)
        ax.set_xlabel("later head (reads)")
        ax.set_title(f"{s.mode}-composition (random ≈ {s.baseline:.2f})", fontsize=9)
        if len(src) * len(dst) <= 256:
            for i in range(len(src)):
                for j in range(len(dst)):
                    v = grid[i, j]
                    if np.isfinite(v):
                        ax.text(
                            j,
                            i,
                            f"{v:.2f}",
                            ha="center",
                            va="center",
                            fontsize=6,
                            color="white" if v < 0.6 * vmax else "black",
                        )
    axes[0][0].set_ylabel("earlier head (writes)")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def attention_patterns(patterns: torch.Tensor, seq_len: int, title: str = "") -> Figure:
    """Grid of head patterns [layers, heads, q, k] on one [BOS, r, r] sequence."""
    L, H = patterns.shape[:2]
    fig = Figure(figsize=(2.2 * H, 2.2 * L + 0.4))
    axes = fig.subplots(L, H, squeeze=False)
    for lay in range(L):
        for h in range(H):
            ax = axes[lay][h]
            ax.imshow(patterns[lay, h].cpu().numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
            ax.axhline(seq_len + 0.5, color="red", lw=0.5)
            ax.axvline(seq_len + 0.5, color="red", lw=0.5)
            ax.set_title(head_id(lay, h), fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    axes[-1][0].set_xlabel("key position")
    axes[-1][0].set_ylabel("query position")
    fig.suptitle(title or "attention on [BOS, r, r] (red lines: start of the repeat)", fontsize=9)
    return fig


def token_table_figure(tables: Sequence[TokenTable], k: int = 5) -> Figure:
    """OV/QK/bigram top-token tables as text panels, one per table."""
    n_rows = max((len(t.rows) for t in tables), default=1)
    fig = Figure(figsize=(2.0 + 1.8 * k, 0.9 + 0.32 * (n_rows + 2) * len(tables)))
    axes = fig.subplots(len(tables), 1, squeeze=False)
    for ax, t in zip(axes[:, 0], tables, strict=True):
        ax.axis("off")
        cells = [[repr(r.text)] + [f"{s.text!r} {s.score:+.2f}" for s in r.top[:k]] for r in t.rows]
        if cells:
            tab = ax.table(
                cellText=cells,
                colLabels=["token"] + [f"#{i + 1}" for i in range(len(cells[0]) - 1)],
                loc="center",
                cellLoc="left",
            )
            tab.auto_set_font_size(False)
            tab.set_fontsize(7)
        ax.set_title(f"{t.head or ''} {t.kind.upper()}: {t.description}", fontsize=8)
    return fig


def phase_change_figure(curves: Sequence[PhaseCurve]) -> Figure:
    """ICL score, best induction score and best previous-token score over training tokens."""
    fig = Figure(figsize=(13, 3.8))
    axes = fig.subplots(1, 3)
    panels = (
        ("icl_score", "in-context learning score\n(loss late - loss early, nats)"),
        ("induction_score", "best induction score"),
        ("prev_token_score", "best previous-token score"),
    )
    for ax, (attr, label) in zip(axes, panels, strict=True):
        for i, c in enumerate(curves):
            pts = [p for p in c.points if p.tokens > 0] or c.points
            xs = [max(p.tokens, 1) for p in pts]
            color = f"C{i}"
            ax.plot(
                xs, [getattr(p, attr) for p in pts], marker="o", ms=3, label=c.recipe, color=color
            )
            formed = [x for x, p in zip(xs, pts, strict=True) if p.induction_score >= 0.3]
            if formed:  # first snapshot with an induction head
                ax.axvline(formed[0], color=color, ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("training tokens")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].axhline(0.0, color="grey", lw=0.5)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        "induction-head phase change (dashed: first snapshot with an induction score >= 0.3)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig
