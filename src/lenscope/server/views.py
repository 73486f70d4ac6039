"""Response bodies that are not the library's own pydantic results: plain JSON views of its
dataclass results (tensors become nested lists; undefined numbers become null)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from lenscope.lens import GenerationLens, LensResult
from lenscope.records import Explanation
from lenscope.server.config import ExplainerName
from lenscope.server.lanes import LaneStats

Num = float | None


class SAEInfo(BaseModel):
    name: str
    hook: str
    d_sae: int
    node_prefix: str = Field(
        description="latent node ids are <prefix>.F<index>, e.g. L2.resid_post"
    )


class DictionaryInfo(BaseModel):
    """A dictionary whose latents are nodes of this server: spliced, or with records (or both)."""

    name: str = Field(
        description="the spliced SAE's name, else the key its records are filed under"
    )
    kind: Literal["sae", "transcoder", "clt"] = Field(
        description="an SAE (reads and writes one residual hook), a transcoder replacing one MLP, "
        "or a cross-layer transcoder's encoder at one layer"
    )
    node_prefix: str = Field(
        description="latent node ids are <prefix>.F<index>, e.g. L2.resid_post, L3.transcoder"
    )
    key: str = Field(
        description="what its latents are filed under (NodeId.hook_name): an SAE's hook, "
        "blocks.L.transcoder or blocks.L.clt"
    )
    d_sae: int
    hook_in: str = Field(description="the hook it reads")
    hooks_out: list[str] = Field(description="the hooks it writes")
    spliced: bool = Field(description="loaded by the server: its latents can be run and edited")
    records: bool = Field(description="its latents have records (node pages)")


class RecordsInfo(BaseModel):
    available: bool
    coverage: str = ""
    n_nodes: int = 0
    note: str = ""


class Limits(BaseModel):
    max_prompt_chars: int
    max_prompt_tokens: int
    max_batch: int
    max_top_k: int
    max_measure: int
    max_interventions: int
    max_trace_hops: int
    max_lens_k: int
    max_watch: int
    max_generate: int
    max_markov_steps: int


class DemoQuestion(BaseModel):
    prompt: str
    target: str
    distractor: str


class ExplainerInfo(BaseModel):
    """An explainer this server can run on request (`POST /api/nodes/{id}/explain`)."""

    name: ExplainerName
    label: str = Field(description="what kind of explanation it writes, shown beside it")
    model: str | None = Field(None, description="the LLM's model name (llm explainer)")


class ModelInfo(BaseModel):
    name: str
    fingerprint: str
    n_params: int
    config: dict[str, Any]
    has_tokenizer: bool
    node_kinds: list[str]
    saes: list[SAEInfo]
    records: RecordsInfo
    limits: Limits
    demo: DemoQuestion
    markov: bool = Field(description="the model is small enough for the Markov view")
    explainers: list[ExplainerInfo] = Field(
        default_factory=list, description="explainers available: offline always, llm if set up"
    )
    tuned_lens: str | None = Field(
        None, description="the model's tuned lens (POST /api/lens with tuned: true), if any"
    )
    dictionaries: list[DictionaryInfo] = Field(
        default_factory=list,
        description="every dictionary whose latents are nodes here (spliced or with records), "
        "transcoders included; `saes` lists the spliced SAEs only",
    )
    n_experts: int = Field(
        0,
        description="expert nodes per layer of a mixture-of-experts model, L.E0 .. L.E<n-1> "
        "(a shared expert, as in Qwen2-MoE, is the last); 0 for a dense model",
    )


class Health(BaseModel):
    status: str
    model: str
    uptime_s: float
    lanes: list[LaneStats]


class Tokenized(BaseModel):
    ids: list[int]
    tokens: list[str]


class NodeActivations(BaseModel):
    """One node's activation on every token of a text (heads: the norm of what they write), and
    for heads the attention pattern [query][key]."""

    node: str
    kind: str
    ids: list[int]
    tokens: list[str]
    acts: list[float]
    max_over_records: Num = None
    pattern: list[list[float]] | None = None


class NodeSummary(BaseModel):
    node: str
    explanation: Explanation | None
    top_tokens: list[str]
    boosts: list[str]


class SummaryMap(BaseModel):
    nodes: dict[str, NodeSummary]


# ---- lens ----------------------------------------------------------------------------------------
class WatchedView(BaseModel):
    text: str
    id: int
    token: str
    pieces: list[str]
    note: str | None = None


class LensView(BaseModel):
    """The lens of one sequence: B boundaries x P positions (x k top tokens, x W watched)."""

    model: str
    lens: Literal["logit", "tuned"]
    tuned_lens: str | None = Field(None, description="the tuned lens's name (lens: tuned)")
    precision: Literal["fp32", "bf16"]
    tokens: list[str]
    token_ids: list[int]
    n_prompt: int
    boundaries: list[str]
    top_tokens: list[list[list[str]]]
    top_probs: list[list[list[float]]]
    entropy: list[list[float]]
    kl: list[list[float]]
    next_rank: list[list[int]] = Field(description="[B][P-1]: rank of token t+1 at position t")
    next_prob: list[list[float]]
    watched: list[WatchedView]
    watch_rank: list[list[list[int]]] = Field(description="[B][P][W]")
    watch_prob: list[list[list[float]]]
    generated: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


def lens_view(
    res: LensResult, gen: GenerationLens | None = None, tuned_name: str | None = None
) -> LensView:
    w = len(res.watched)
    b, p = len(res.boundaries), len(res.tokens)
    empty: list[list[list[Any]]] = [[[] for _ in range(p)] for _ in range(b)]
    return LensView(
        model=res.model,
        lens="tuned" if res.lens == "tuned" else "logit",
        tuned_lens=tuned_name if res.lens == "tuned" else None,
        precision="bf16" if res.precision == "bf16" else "fp32",
        tokens=res.tokens,
        token_ids=res.token_ids,
        n_prompt=gen.n_prompt if gen is not None else p,
        boundaries=res.boundaries,
        top_tokens=res.top_tokens,
        top_probs=res.top_probs.tolist(),
        entropy=res.entropy.tolist(),
        kl=res.kl.tolist(),
        next_rank=res.next_rank.tolist(),
        next_prob=res.next_prob.tolist(),
        watched=[WatchedView(**vars(x)) for x in res.watched],
        watch_rank=res.watch_rank.tolist() if res.watch_rank is not None and w else empty,
        watch_prob=res.watch_prob.tolist() if res.watch_prob is not None and w else empty,
        generated=gen.generated if gen is not None else [],
        notes=res.notes,
    )
