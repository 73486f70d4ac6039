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

from typing import TYPE_CHECKING

import numpy as np

from lenscope.viz.heatmap import Heatmap, HeatmapSet, token_label

if TYPE_CHECKING:
    from lenscope.lens.result import GenerationLens, LensResult


def quoted_token(tok: str) -> str:
    """A token quoted the way `repr` quotes it, so leading spaces show (`' 10'` vs `'10'`), with
    newlines and control characters made visible by `token_label` (`'\\n'`, not `'\\\\n'`)."""
    label = token_label(tok)
    q = '"' if "'" in label and '"' not in label else "'"
    return f"{q}{label}{q}"


def _title(res: LensResult, what: str) -> str:
    return f"{res.model} · {res.lens} lens · {what}"


def rank_heatmap(res: LensResult) -> Heatmap:
    return Heatmap(
        values=res.next_rank.double().numpy(),
        row_labels=list(res.boundaries),
        col_labels=res.tokens[1:],
        title=_title(res, "rank of the actual next token (1 = top)"),
        better="low",
        log_scale=True,
        vmin=1.0,
        value_format="{:.0f}",
        x_label="token being predicted",
        colorbar_label="rank",
    )


def prob_heatmap(res: LensResult) -> Heatmap:
    return Heatmap(
        values=res.next_prob.double().numpy(),
        row_labels=list(res.boundaries),
        col_labels=res.tokens[1:],
        title=_title(res, "probability of the actual next token"),
        better="high",
        vmin=0.0,
        vmax=1.0,
        value_format="{:.2f}",
        x_label="token being predicted",
        colorbar_label="probability",
    )


def entropy_heatmap(res: LensResult) -> Heatmap:
    top = [[layer[t][0] for t in range(len(res.tokens))] for layer in res.top_tokens]
    return Heatmap(
        values=res.entropy.double().numpy(),
        row_labels=list(res.boundaries),
        col_labels=list(res.tokens),
        title=_title(res, "entropy (nats); cells: the lens's top token"),
        better="low",
        vmin=0.0,
        cell_text=top,
        x_label="input token (the lens predicts the one after it)",
        colorbar_label="entropy (nats)",
    )


def kl_heatmap(res: LensResult) -> Heatmap:
    return Heatmap(
        values=res.kl.double().numpy(),
        row_labels=list(res.boundaries),
        col_labels=list(res.tokens),
        title=_title(res, "KL(final ‖ lens), nats"),
        better="low",
        vmin=0.0,
        value_format="{:.1f}",
        x_label="input token (the lens predicts the one after it)",
        colorbar_label="KL (nats)",
    )


def layer_predictions_heatmap(res: LensResult, position: int = -1) -> Heatmap:
    t = res.position(position)
    preds = res.layer_predictions(t)
    k = len(preds[0].tokens)
    probs = np.array([p.probs for p in preds], dtype=np.float64)
    text = [
        [f"{token_label(tok)} {_pct(pr)}" for tok, pr in zip(p.tokens, p.probs, strict=True)]
        for p in preds
    ]
    return Heatmap(
        values=probs,
        row_labels=list(res.boundaries),
        col_labels=[f"#{i + 1}" for i in range(k)],
        title=_title(res, f"top tokens after {quoted_token(res.tokens[t])} (position {t})"),
        better="high",
        vmin=0.0,
        vmax=1.0,
        cell_text=text,
        x_label="rank",
        colorbar_label="probability",
    )


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
    return Heatmap(
        values=ranks,
        row_labels=list(res.boundaries),
        col_labels=[quoted_token(x.token) for x in res.watched],  # " is" and "is" differ
        title=_title(
            res, f"rank of watched tokens after {quoted_token(w.after)} (position {w.position})"
        ),
        better="low",
        log_scale=True,
        vmin=1.0,
        value_format="{:.0f}",
        x_label="watched token",
        colorbar_label="rank",
        tooltips=tips,
    )


def rankings_heatmap(gen: GenerationLens) -> Heatmap:
    return Heatmap(
        values=np.array(gen.rankings, dtype=np.float64).reshape(len(gen.lens.boundaries), -1),
        row_labels=list(gen.lens.boundaries),
        col_labels=list(gen.generated),
        title=_title(gen.lens, "rank of each generated token where it was chosen"),
        better="low",
        log_scale=True,
        vmin=1.0,
        value_format="{:.0f}",
        x_label="generated token",
        colorbar_label="rank",
    )


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
