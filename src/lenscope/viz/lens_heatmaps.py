"""The lens's pictures as `Heatmap`s (rows: boundaries, embeddings on top; darker = better).

- `rank`: rank of the actual next token, columns labelled by that token (log colour scale)
- `prob`: its probability under each boundary's lens
- `entropy`: entropy of each boundary's lens, cells captioned with its top token
- `kl`: KL(final ‖ lens)
- `layer_predictions`: top-k tokens per boundary at one position, shaded by probability
- `rankings_watch`: rank of each watched token per boundary at one position
- `rankings`: rank of each generated token at the position that chose it (Ecco's figure)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from lenscope.viz.heatmap import FloatGrid, Heatmap, HeatmapSet, token_label

if TYPE_CHECKING:
    from lenscope.lens.result import GenerationLens, LensResult


def quoted_token(tok: str) -> str:
    """A token quoted the way `repr` quotes it, so leading spaces show (`' 10'` vs `'10'`), with
    newlines and control characters made visible by `token_label` (`'\\n'`, not `'\\\\n'`)."""
    label = token_label(tok)
    q = '"' if "'" in label and '"' not in label else "'"
    return f"{q}{label}{q}"


_PREDICTED = "token being predicted"


def _title(res: LensResult, what: str) -> str:
    return f"{res.model} · {res.lens} lens · {what}"


@dataclass(frozen=True)
class _Scale:
    """How one kind of per-boundary figure is coloured and captioned."""

    better: Literal["high", "low"]
    colorbar_label: str
    vmin: float
    vmax: float | None = None
    log_scale: bool = False
    value_format: str = "{:.2g}"


_RANK = _Scale("low", "rank", 1.0, log_scale=True, value_format="{:.0f}")  # 1 = top
_PROB = _Scale("high", "probability", 0.0, 1.0, value_format="{:.2f}")
_ENTROPY = _Scale("low", "entropy (nats)", 0.0)
_KL = _Scale("low", "KL (nats)", 0.0, value_format="{:.1f}")
_INPUT = "input token (the lens predicts the one after it)"


def _boundary_map(
    res: LensResult,
    scale: _Scale,
    values: FloatGrid,
    cols: list[str],
    what: str,
    x_label: str,
    *,
    cell_text: list[list[str]] | None = None,
    tooltips: list[list[str]] | None = None,
) -> Heatmap:
    """A figure with one row per boundary of the lens `res`, coloured on `scale`."""
    return Heatmap(
        values=values,
        row_labels=list(res.boundaries),
        col_labels=cols,
        title=_title(res, what),
        better=scale.better,
        log_scale=scale.log_scale,
        value_format=scale.value_format,
        cell_text=cell_text,
        vmin=scale.vmin,
        vmax=scale.vmax,
        x_label=x_label,
        colorbar_label=scale.colorbar_label,
        tooltips=tooltips,
    )


def rank_heatmap(res: LensResult) -> Heatmap:
    what = "rank of the actual next token (1 = top)"
    ranks = res.next_rank.double().cpu().numpy()
    return _boundary_map(res, _RANK, ranks, res.tokens[1:], what, _PREDICTED)


def prob_heatmap(res: LensResult) -> Heatmap:
    what = "probability of the actual next token"
    probs = res.next_prob.double().cpu().numpy()
    return _boundary_map(res, _PROB, probs, res.tokens[1:], what, _PREDICTED)


def entropy_heatmap(res: LensResult) -> Heatmap:
    top = [[layer[t][0] for t in range(len(res.tokens))] for layer in res.top_tokens]
    what = "entropy (nats); cells: the lens's top token"
    ent = res.entropy.double().cpu().numpy()
    return _boundary_map(res, _ENTROPY, ent, list(res.tokens), what, _INPUT, cell_text=top)


def kl_heatmap(res: LensResult) -> Heatmap:
    what = "KL(final ‖ lens), nats"
    return _boundary_map(res, _KL, res.kl.double().cpu().numpy(), list(res.tokens), what, _INPUT)


def layer_predictions_heatmap(res: LensResult, position: int = -1) -> Heatmap:
    t = res.position(position)
    preds = res.layer_predictions(t)
    k = len(preds[0].tokens)
    probs = np.array([p.probs for p in preds], dtype=np.float64)
    text = [
        [f"{token_label(tok)} {_pct(pr)}" for tok, pr in zip(p.tokens, p.probs, strict=True)]
        for p in preds
    ]
    what = f"top tokens after {quoted_token(res.tokens[t])} (position {t})"
    cols = [f"#{i + 1}" for i in range(k)]
    return _boundary_map(res, _PROB, probs, cols, what, "rank", cell_text=text)


def rankings_watch_heatmap(res: LensResult, position: int = -1) -> Heatmap | None:
    if not res.watched:
        return None
    w = res.rankings_watch(position)
    ranks = np.array(w.rank, dtype=np.float64)
    tips = [
        [
            f"{b} · {quoted_token(tok)}: rank {r}, p={_pct(p)}"
            for tok, r, p in zip(w.tokens, rr, pp, strict=True)
        ]
        for b, rr, pp in zip(w.boundaries, w.rank, w.prob, strict=True)
    ]
    cols = [quoted_token(x.token) for x in res.watched]  # " is" and "is" differ
    what = f"rank of watched tokens after {quoted_token(w.after)} (position {w.position})"
    return _boundary_map(res, _RANK, ranks, cols, what, "watched token", tooltips=tips)


def rankings_heatmap(gen: GenerationLens) -> Heatmap:
    ranks = np.array(gen.rankings, dtype=np.float64).reshape(len(gen.lens.boundaries), -1)
    what = "rank of each generated token where it was chosen"
    return _boundary_map(gen.lens, _RANK, ranks, list(gen.generated), what, "generated token")


def lens_heatmaps(res: LensResult, position: int = -1) -> HeatmapSet:
    """Every picture of one sequence's lens (stems: rank, prob, entropy, kl, ...)."""
    maps: list[Heatmap] = []
    stems: list[str] = []
    if len(res.tokens) > 1:
        maps += [rank_heatmap(res), prob_heatmap(res)]
        stems += ["rank", "prob"]
    maps += [entropy_heatmap(res), kl_heatmap(res), layer_predictions_heatmap(res, position)]
    stems += ["entropy", "kl", "layer_predictions"]
    watch = rankings_watch_heatmap(res, position)
    if watch is not None:
        maps.append(watch)
        stems.append("rankings_watch")
    return HeatmapSet(maps, f"{res.model}: {res.lens} lens", stems)


def generation_heatmaps(gen: GenerationLens) -> HeatmapSet:
    """The generation's pictures: rankings first, then the whole sequence's lens."""
    base = lens_heatmaps(gen.lens, gen.position)
    if not gen.generated:
        return base
    return HeatmapSet([rankings_heatmap(gen), *base.maps], base.title, ["rankings", *base.stems])


def _pct(p: float) -> str:
    if p < 1e-4:
        return "<0.01%"
    return f"{100 * p:.2f}%" if p < 0.1 else f"{100 * p:.0f}%"
