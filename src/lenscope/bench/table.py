"""The bench's comparison: one row of figures per dictionary, the frontier series (each metric
against L0, one series per architecture) and their plots (matplotlib, Agg; PNG + SVG)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lenscope.bench.suite import DictionaryBench

# (key, title, which way is better)
METRICS: tuple[tuple[str, str, str], ...] = (
    ("ce_loss_score", "CE score", "higher"),
    ("kl_div_score", "KL score", "higher"),
    ("explained_variance", "expl. var", "higher"),
    ("fvu", "FVU", "lower"),
    ("cossim", "cos sim", "higher"),
    ("l2_ratio", "L2 ratio", "near 1"),
    ("relative_reconstruction_bias", "rel. bias", "near 1"),
    ("l1", "L1", "lower"),
    ("frac_alive", "alive", "higher"),
    ("freq_over_1_percent", ">1%", "lower"),
    ("freq_over_10_percent", ">10%", "lower"),
    ("max_decoder_cossim", "max dec cos", "lower"),
    ("max_encoder_cossim", "max enc cos", "lower"),
)


def row(d: DictionaryBench) -> dict[str, float | None]:
    """The figures of one dictionary by metric key: core metrics, `l0`, and the probing means
    (`probe_full`, `probe_k1`, `probe_k2`, ...)."""
    c = d.core
    out: dict[str, float | None] = {"l0": c.l0}
    for key, _, _ in METRICS:
        out[key] = getattr(c, key)
    if d.absorption is not None:
        out["absorption"] = d.absorption.mean_absorption_fraction
        out["full_absorption"] = d.absorption.full_absorption_rate
    if d.tpp is not None:
        out["tpp"] = d.tpp.tpp
    if d.probing is not None:
        out["probe_full"] = d.probing.mean_full_accuracy
        for k, v in d.probing.mean_sparse_accuracy.items():
            out[f"probe_k{k}"] = v
    return out


def series_label(d: DictionaryBench) -> str:
    """One line per architecture (and kind: an SAE and a transcoder never share one)."""
    return d.architecture if d.kind == "sae" else f"{d.kind} {d.architecture}"


def frontier(
    results: Sequence[DictionaryBench], metric: str
) -> dict[str, list[tuple[float, float]]]:
    """Per architecture, the (L0, metric) points sorted by L0 (missing figures left out)."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for d in results:
        r = row(d)
        v = r.get(metric)
        if v is not None and math.isfinite(v) and math.isfinite(d.core.l0):
            out[series_label(d)].append((d.core.l0, float(v)))
    return {k: sorted(v) for k, v in sorted(out.items())}


def plot_metrics(results: Sequence[DictionaryBench]) -> list[str]:
    keys = [k for k, _, _ in METRICS if k not in ("l1",)]
    extra = ("absorption", "full_absorption", "tpp")
    probe = sorted({k for d in results for k in row(d) if k.startswith("probe_")})
    return keys + probe + [k for k in extra if any(k in row(d) for d in results)]


def plot_frontiers(results: Sequence[DictionaryBench], out: Path) -> list[str]:
    """One panel per metric, the metric against L0, one line per architecture, in one figure
    (`frontier.png` and `frontier.svg` in `out`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(m, frontier(results, m)) for m in plot_metrics(results)]
    panels = [(m, p) for m, p in panels if p]
    if not panels:
        return []
    out.mkdir(parents=True, exist_ok=True)
    cols = 4
    rows = math.ceil(len(panels) / cols)
    fig: Any
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, (metric, pts) in zip(axes.flat, panels, strict=False):
        for label, xy in pts.items():
            ax.plot(*zip(*xy, strict=True), "o-", label=label, markersize=3)
        ax.set_xscale("log")
        ax.set_title(metric, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower right", fontsize=8)
    fig.suptitle(
        f"{results[0].model}: each metric against L0 (active latents per token)", fontsize=9
    )
    fig.tight_layout()
    paths = []
    for ext in ("png", "svg"):
        p = out / f"frontier.{ext}"
        fig.savefig(p, dpi=100)
        paths.append(str(p))
    plt.close(fig)
    return paths
