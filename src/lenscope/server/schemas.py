"""Request bodies of the HTTP API (pydantic): every size is bounded in the schema itself.

The library's own request types (questions, interventions, trace hops) are reused unchanged so that
the HTTP vocabulary is the library's; what they leave unbounded (how many interventions, how long a
steering vector) is checked in `check_interventions` before any work starts.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    model_validator,
)

from lenscope.attribution.questions import AttentionScore, Logit, LogitDiff, Prob
from lenscope.errors import InputError
from lenscope.interventions.spec import Ablate, InterventionSet, Patch, Steer
from lenscope.nodes import NodeKind
from lenscope.server.config import (
    MAX_BATCH,
    MAX_GENERATE,
    MAX_INTERVENTIONS,
    MAX_LENS_K,
    MAX_MARKOV_SEQUENCE,
    MAX_MARKOV_STEPS,
    MAX_MEASURE,
    MAX_PROMPT_CHARS,
    MAX_PROMPT_TOKENS,
    MAX_REFERENCE,
    MAX_TOKENS_PER_SET,
    MAX_TOP_K,
    MAX_TRACE_HOPS,
    MAX_WATCH,
    ExplainerName,
)
from lenscope.text import find_invalid_text

PromptText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROMPT_CHARS)]
TokenId = Annotated[int, Field(ge=0, lt=1 << 31)]
PromptIds = Annotated[list[TokenId], Field(min_length=1, max_length=MAX_PROMPT_TOKENS)]
PromptIn = PromptText | PromptIds
ShortText = Annotated[str, StringConstraints(max_length=200)]
TopK = Annotated[int, Field(ge=1, le=MAX_TOP_K, description=f"rows per column, 1..{MAX_TOP_K}")]
Measure = Annotated[
    int, Field(ge=0, le=MAX_MEASURE, description="rows per granularity measured by ablation")
]
HopText = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _kind(v: Any) -> Any:
    """The question's kind; `logit_diff` when omitted (as the library's default says)."""
    if isinstance(v, dict):
        return v.get("kind", "logit_diff")
    return getattr(v, "kind", None)


QuestionIn = Annotated[
    Annotated[LogitDiff, Tag("logit_diff")]
    | Annotated[Logit, Tag("logit")]
    | Annotated[Prob, Tag("prob")]
    | Annotated[AttentionScore, Tag("attention")],
    Discriminator(_kind),
]
"""A question in a request: the library's `Question`, with `kind` optional for logit_diff."""


class Strict(BaseModel):
    """A request body: no unknown fields, and every string in it (a prompt, a token, a node id,
    a key) valid Unicode text, checked once on the raw body before any field is read."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_text(cls, data: Any) -> Any:
        found = find_invalid_text(data)
        if found is not None:
            where, problem = found
            raise ValueError(f"{where}: {problem}")
        return data


class WhyRequest(Strict):
    """Why does the model do this on one prompt: candidates, the node table, the token view."""

    prompt: PromptIn
    question: QuestionIn
    interventions: InterventionSet | None = None
    top_k: TopK = 10
    measure: Measure = 8
    ablation: Literal["zero", "mean"] = "zero"
    reference: Annotated[list[PromptIn], Field(max_length=MAX_REFERENCE)] | None = None
    kinds: list[NodeKind] | None = Field(
        None, description="keep only these node kinds in the table (default: all)"
    )


class WhyBatchRequest(Strict):
    """The same question on several prompts, one padded forward and backward pass."""

    prompts: Annotated[list[PromptIn], Field(min_length=1, max_length=MAX_BATCH)]
    question: QuestionIn
    interventions: InterventionSet | None = None
    top_k: TopK = 10
    measure: Measure = 8
    kinds: list[NodeKind] | None = None


class SideIn(BaseModel):  # a part of CompareRequest, whose text is checked already
    model_config = ConfigDict(extra="forbid")

    prompt: PromptIn
    interventions: InterventionSet | None = None


class CompareRequest(Strict):
    """One question on two prompts (or one prompt under two intervention sets)."""

    question: QuestionIn
    left: SideIn
    right: SideIn
    top_k: TopK = 10
    measure: Measure = 4


class TraceRequest(Strict):
    """Edges into the last node of `path` (upstream) or out of one node (downstream).
    Heads may be traced through one input: `L1.H2@14:k`."""

    prompt: PromptIn
    question: QuestionIn
    path: Annotated[list[HopText], Field(min_length=1, max_length=MAX_TRACE_HOPS)]
    direction: Literal["upstream", "downstream"] = "upstream"
    interventions: InterventionSet | None = None
    top_k: TopK = 10


class AttentionRequest(Strict):
    """Why head (layer, head) attends from the query to the key position."""

    prompt: PromptIn
    question: AttentionScore
    interventions: InterventionSet | None = None
    top_k: TopK = 10


class TokenizeRequest(Strict):
    text: PromptText


class TextRequest(Strict):
    text: PromptText


class ActiveRequest(Strict):
    text: PromptText
    limit: Annotated[int, Field(ge=1, le=100)] = 20


class ExplainRequest(Strict):
    explainer: ExplainerName = Field(
        "offline",
        description="offline: token statistics (always); llm: the server's LLM (--llm-url)",
    )
    refresh: bool = Field(False, description="explain again even if an explanation is cached")


class LensRequest(Strict):
    prompt: PromptIn
    k: Annotated[int, Field(ge=1, le=MAX_LENS_K)] = 5
    watch: Annotated[list[ShortText], Field(max_length=MAX_WATCH)] = Field(default_factory=list)
    sublayers: bool = False
    generate: Annotated[int, Field(ge=0, le=MAX_GENERATE)] = 0
    tuned: bool = Field(
        False,
        description="the server's tuned lens instead of the logit lens (GET /api/model names it; "
        "400 when there is none); block boundaries only, so not with sublayers",
    )
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="fp32: exact; bf16: non-final boundaries in bfloat16 (approximate)"
    )


class BabyRequest(Strict):
    """Train Karpathy's baby GPT on a sequence and draw its Markov chain before and after."""

    sequence: Annotated[str, StringConstraints(min_length=1, max_length=MAX_MARKOV_SEQUENCE)] = (
        "111101111011110"
    )
    steps: Annotated[int, Field(ge=0, le=MAX_MARKOV_STEPS)] = 50
    seed: Annotated[int, Field(ge=0, lt=1 << 31)] = 1337
    vocab: Annotated[int, Field(ge=2, le=16)] | None = None
    context: Annotated[int, Field(ge=1, le=8)] = 3
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01


# ---- checks the schema cannot express ----------------------------------------------------------------
def check_question(q: LogitDiff | Logit | Prob | AttentionScore) -> None:
    if isinstance(q, LogitDiff):
        for name, toks in (("target", q.target), ("distractor", q.distractor)):
            if len(toks) > MAX_TOKENS_PER_SET:
                raise InputError(f"at most {MAX_TOKENS_PER_SET} {name} tokens, got {len(toks)}")
            _short_tokens(toks)
    elif isinstance(q, Logit | Prob):
        _short_tokens([q.token])


def _short_tokens(toks: list[str | int]) -> None:
    for t in toks:
        if isinstance(t, str) and len(t) > 100:
            raise InputError(f"{t[:20]!r}... is not a token (over 100 characters)")


def check_interventions(iv: InterventionSet | None, d_model: int) -> None:
    """Bound what the library leaves open: counts, steering vectors, source prompts."""
    if iv is None:
        return
    if len(iv.interventions) > MAX_INTERVENTIONS:
        raise InputError(
            f"{len(iv.interventions)} interventions; at most {MAX_INTERVENTIONS} per request"
        )
    refs = iv.reference or []
    if len(refs) > MAX_REFERENCE:
        raise InputError(f"{len(refs)} reference prompts; at most {MAX_REFERENCE}")
    for p in refs:
        check_prompt_size(p)
    for item in iv.interventions:
        if isinstance(item, Ablate | Patch) and item.source is not None:
            check_prompt_size(item.source)
        if isinstance(item, Steer):
            if not math.isfinite(item.coefficient):
                raise InputError("a steering coefficient must be a finite number")
            if item.vector is not None:
                if len(item.vector) != d_model:
                    raise InputError(
                        f"a steering vector needs d_model = {d_model} numbers, got "
                        f"{len(item.vector)}"
                    )
                if not all(math.isfinite(v) for v in item.vector):
                    raise InputError("a steering vector must hold finite numbers")
        positions = getattr(item, "positions", None)
        if positions is not None and len(positions) > MAX_PROMPT_TOKENS:
            raise InputError(f"at most {MAX_PROMPT_TOKENS} positions per intervention")


def check_prompt_size(p: str | list[int]) -> None:
    if isinstance(p, str) and len(p) > MAX_PROMPT_CHARS:
        raise InputError(f"a prompt has {len(p)} characters; at most {MAX_PROMPT_CHARS}")
    if isinstance(p, list) and len(p) > MAX_PROMPT_TOKENS:
        raise InputError(f"a prompt has {len(p)} tokens; at most {MAX_PROMPT_TOKENS}")
