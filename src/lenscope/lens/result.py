"""Result objects of the lens: plain dataclasses (tensors on CPU) that faces only render.

Conventions: a *position* is a residual-stream position t (0-based) and its lens reads the
distribution over token t+1. A *rank* is 1 + the number of vocabulary tokens with a strictly
higher score (1 = top). KL is KL(final ‖ lens) in nats: 0 at the last boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from torch import Tensor

from lenscope.jsonable import JsonResult
from lenscope.lens.watch import WatchedToken, resolve_position

if TYPE_CHECKING:
    from lenscope.viz.heatmap import HeatmapSet


@dataclass
class LayerPrediction(JsonResult):
    """The top-k tokens of one boundary's lens at one position (Ecco's `layer_predictions`)."""

    boundary: str
    tokens: list[str]
    ids: list[int]
    probs: list[float]


@dataclass
class WatchRankings(JsonResult):
    """Rank and probability of each watched token at every boundary, at one position.

    `texts`: the watched strings as given; `tokens`: the token watched for each (its first);
    `rank[b][w]` / `prob[b][w]`: boundary b, watched token w (Ecco's `rankings_watch`).
    """

    position: int
    after: str
    texts: list[str]
    tokens: list[str]
    ids: list[int]
    boundaries: list[str]
    rank: list[list[int]]
    prob: list[list[float]]


@dataclass
class LensResult(JsonResult):
    """The lens of one sequence at every boundary (B boundaries, P positions, k, W watched)."""

    model: str
    lens: str  # "logit" or "tuned"
    token_ids: list[int]
    tokens: list[str]
    boundaries: list[str]
    hooks: list[str]
    top_ids: Tensor  # [B, P, k]
    top_tokens: list[list[list[str]]]  # [B][P][k]
    top_probs: Tensor  # [B, P, k]
    entropy: Tensor  # [B, P] nats
    kl: Tensor  # [B, P] KL(final ‖ lens), nats
    next_rank: Tensor  # [B, P-1] rank of token t+1 at position t
    next_prob: Tensor  # [B, P-1]
    watched: list[WatchedToken] = field(default_factory=list)
    watch_rank: Tensor | None = None  # [B, P, W]
    watch_prob: Tensor | None = None  # [B, P, W]
    notes: list[str] = field(default_factory=list)
    precision: str = "fp32"  # of the non-final projections: "fp32" or "bf16" (approximate)

    def position(self, position: int) -> int:
        return resolve_position(position, len(self.token_ids))

    def layer_predictions(self, position: int = -1, k: int | None = None) -> list[LayerPrediction]:
        """Top tokens at every boundary for residual position `position` (default: the last)."""
        t = self.position(position)
        k = self.top_ids.shape[-1] if k is None else min(k, self.top_ids.shape[-1])
        return [
            LayerPrediction(
                b,
                self.top_tokens[i][t][:k],
                self.top_ids[i, t, :k].tolist(),
                self.top_probs[i, t, :k].tolist(),
            )
            for i, b in enumerate(self.boundaries)
        ]

    def rankings_watch(self, position: int = -1) -> WatchRankings:
        """Rank and probability of every watched token at every boundary at `position`."""
        t = self.position(position)
        w = len(self.watched)
        rank = self.watch_rank[:, t].tolist() if self.watch_rank is not None else []
        prob = self.watch_prob[:, t].tolist() if self.watch_prob is not None else []
        if w == 0:
            rank = prob = [[] for _ in self.boundaries]
        return WatchRankings(
            t,
            self.tokens[t],
            [x.text for x in self.watched],
            [x.token for x in self.watched],
            [x.id for x in self.watched],
            list(self.boundaries),
            rank,
            prob,
        )

    def heatmaps(self, position: int = -1) -> HeatmapSet:
        from lenscope.viz.lens_heatmaps import lens_heatmaps

        return lens_heatmaps(self, position)

    def _repr_html_(self) -> str:
        return self.heatmaps()._repr_html_()


@dataclass
class GenerationLens(JsonResult):
    """The lens across a generation: the prompt plus N generated tokens.

    `rankings[b][i]`: at boundary b, the rank of the i-th generated token at the position that
    chose it (Ecco's `rankings`); `layer_predictions` and `rankings_watch` are read at residual
    position `position` (default: the last prompt token, which chose the first new token).
    """

    lens: LensResult
    n_prompt: int
    generated_ids: list[int]
    generated: list[str]
    position: int
    temperature: float
    top_k: int | None
    seed: int | None
    rankings: list[list[int]]
    layer_predictions: list[LayerPrediction]
    rankings_watch: WatchRankings
    notes: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.lens.tokens)

    def heatmaps(self) -> HeatmapSet:
        from lenscope.viz.lens_heatmaps import generation_heatmaps

        return generation_heatmaps(self)

    def _repr_html_(self) -> str:
        return self.heatmaps()._repr_html_()
