"""Plain result objects of the records: what faces (CLI, server, web) render."""

from __future__ import annotations

from dataclasses import dataclass, field

from lenscope.jsonable import JsonResult


@dataclass
class Example(JsonResult):
    """One context window: the node's activation on each token; the example token at `center`."""

    set: str  # "top" | "random" | "quantile"
    rank: int
    position: int  # global position of the example token in the harvest's rows
    activation: float  # at the example token
    token_ids: list[int]
    tokens: list[str]
    acts: list[float]
    center: int
    attn: list[float] | None = None  # heads: attention from the example token to each token
    bin: int = -1  # quantile bin (quantile examples)
    doc: str = ""


@dataclass
class Stats(JsonResult):
    count: int
    mean: float
    var: float
    std: float
    skew: float | None
    kurtosis: float | None  # excess kurtosis (0 for a normal distribution)
    density: float  # fraction of tokens with activation > 0
    max: float
    min: float

    def labelled(self) -> list[tuple[str, str]]:
        """(label, formatted value) of each figure, as the terminal and HTML record pages show them."""
        return [
            ("tokens", f"{self.count:,}"),
            ("mean", f"{self.mean:.4g}"),
            ("std", f"{self.std:.4g}"),
            ("skew", "n/a" if self.skew is None else f"{self.skew:.3g}"),
            ("excess kurtosis", "n/a" if self.kurtosis is None else f"{self.kurtosis:.3g}"),
            ("density > 0", f"{self.density:.2%}"),
            ("max", f"{self.max:.4g}"),
            ("min", f"{self.min:.4g}"),
        ]


@dataclass
class Histogram(JsonResult):
    """`counts[0]` is below `lo`, `counts[-1]` at or above `hi`; equal-width bins between."""

    lo: float
    hi: float
    counts: list[int]
    sample_rate: float


@dataclass
class QuantileBin(JsonResult):
    level_lo: float
    level_hi: float | None
    lo: float
    hi: float | None
    examples: list[Example] = field(default_factory=list)


@dataclass
class TokenEffect(JsonResult):
    token: str
    token_id: int
    value: float
    source: str | None = None  # heads: the source token whose OV path gives this effect
    source_id: int | None = None


@dataclass
class Explanation(JsonResult):
    node_id: str
    explainer: str
    text: str
    status: str  # "ok" | "failed"
    score: float | None
    control: float | None
    n_tokens: int
    error: str = ""
    model: str = ""  # the LLM (llm explainer)


@dataclass
class NodeRecord(JsonResult):
    node_id: str
    kind: str
    layer: int
    index: int
    hook: str
    stats: Stats
    histogram: Histogram
    top: list[Example]
    random: list[Example]
    quantiles: list[QuantileBin]
    boosts: list[TokenEffect]
    suppresses: list[TokenEffect]
    explanations: list[Explanation]
    model: str
    fingerprint: str

    def _repr_html_(self) -> str:
        """Inline in notebooks: the node's page (`lenscope show`'s HTML) in an isolated frame."""
        from lenscope.viz.record_html import render_html
        from lenscope.viz.why_html import page_in_iframe

        return page_in_iframe(render_html(self))

    @property
    def shade_scale(self) -> float:
        """The activation that shades fully: the best top example's. `stats.max` can be larger,
        at a row's first position, which is never a top example (HarvestConfig.context_only)."""
        best = max((e.activation for e in self.top), default=self.stats.max)
        return max(best, 1e-12)

    @property
    def shade_floor(self) -> float:
        """Activations shade from here up: 0, or the mean for heads (whose norms are never 0)."""
        return self.stats.mean if self.kind == "head" and self.stats.mean < self.stats.max else 0.0


@dataclass
class TokenHit(JsonResult):
    node_id: str
    kind: str
    matches: int  # how many of the node's listed tokens equal the query
    max: float
    where: str  # "top" | "boost" | "suppress"


@dataclass
class ActiveNode(JsonResult):
    node_id: str
    kind: str
    activation: float  # the node's maximum on the text
    ratio: float  # activation / the node's maximum over the harvest
    position: int  # token index in the text
    token: str
