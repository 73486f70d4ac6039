"""`Debugger`: the engine's entry point. Every call is one request: it runs on a private view of the
model (hooks never touch the model itself), so concurrent requests on one model are safe."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from lenscope.attribution.attention import AttentionResult, attention_result
from lenscope.attribution.capture import Capture, capture
from lenscope.attribution.compare import Comparison, Side, SideSummary, compare_rows, measure_both
from lenscope.attribution.questions import AttentionScore, Logit, LogitDiff, Prob, Resolved, resolve
from lenscope.attribution.results import Candidate, Hop, PromptInfo, TraceResult, WhyResult
from lenscope.attribution.table import node_tables, str_tokens
from lenscope.attribution.trace_result import trace_result
from lenscope.errors import InputError
from lenscope.interventions.plan import Plan, compile_plan
from lenscope.interventions.prompts import PromptBatch, encode_prompts
from lenscope.interventions.spec import InterventionSet, Prompt
from lenscope.model.transformer import HookedTransformer
from lenscope.model.view import private_view
from lenscope.sae.dictionary import Dictionary, check_compatible

QuestionT = LogitDiff | Logit | Prob | AttentionScore
MAX_TOP_K = 200


@dataclass
class Session:
    """Everything one request computed: the view it ran on, its batch, plan and capture."""

    view: HookedTransformer
    batch: PromptBatch
    question: Resolved
    plan: Plan
    cap: Capture


def dictionaries_of(obj: Any) -> list[Dictionary]:
    """The dictionaries of one item of `saes`: an SAE, a transcoder, a list of transcoders, or a
    cross-layer transcoder (one dictionary per layer; anything with `dictionaries()`)."""
    many = getattr(obj, "dictionaries", None)
    if callable(many):
        return [Dictionary.of(d) for d in many()]
    if isinstance(obj, list | tuple):
        return [Dictionary.of(d) for d in obj]
    return [Dictionary.of(obj)]


class Debugger:
    """Ask why a model does something, on one model with optional SAEs and transcoders spliced
    in as nodes (transcoders with their error kept: the model's output is unchanged)."""

    def __init__(self, model: HookedTransformer, saes: Sequence[Any] = ()) -> None:
        self.model = model
        self.latents: dict[str, Dictionary] = {}
        for sae in saes:
            for src in dictionaries_of(sae):
                key = src.node_key  # raises for latents that are no debugger nodes
                if key in self.latents:
                    what = "SAEs read" if src.is_sae else "transcoders replace"
                    raise InputError(
                        f"two {what} {src.hook_in if src.is_sae else key}; splice one SAE per "
                        "hook point and one transcoder per MLP"
                    )
                check_compatible(model, src, strict=False)
                self.latents[key] = src

    @contextmanager
    def session(
        self,
        prompts: Sequence[Prompt],
        question: QuestionT,
        interventions: InterventionSet | None = None,
    ) -> Iterator[Session]:
        resolved = resolve(self.model, question)
        with private_view(self.model) as view:
            batch = encode_prompts(view, prompts)
            plan = compile_plan(view, interventions, batch, self.latents)
            cap = capture(view, batch, resolved, plan, self.latents)
            check_finite(cap, bool(interventions))
            yield Session(view, batch, resolved, plan, cap)

    def why(
        self,
        prompt: Prompt,
        question: QuestionT,
        interventions: InterventionSet | None = None,
        *,
        top_k: int = 10,
        measure: int = 8,
        ablation: Literal["zero", "mean"] = "zero",
        reference: Sequence[Prompt] | None = None,
    ) -> WhyResult:
        """The node table for one prompt (see `why_batch`)."""
        return self.why_batch(
            [prompt],
            question,
            interventions,
            top_k=top_k,
            measure=measure,
            ablation=ablation,
            reference=reference,
        )[0]

    def why_batch(
        self,
        prompts: Sequence[Prompt],
        question: QuestionT,
        interventions: InterventionSet | None = None,
        *,
        top_k: int = 10,
        measure: int = 8,
        ablation: Literal["zero", "mean"] = "zero",
        reference: Sequence[Prompt] | None = None,
    ) -> list[WhyResult]:
        """One forward and one backward pass over all prompts (padded), then per prompt: the node
        table (top `top_k` per column), the top `measure` rows per granularity measured by
        ablation (zero, or mean over `reference`), sums per node kind and per token."""
        _check_k(top_k, measure)
        with self.session(prompts, question, interventions) as s:
            tables = node_tables(
                s.view,
                s.cap,
                s.plan,
                self.latents,
                top_k=top_k,
                measure=measure,
                ablation=ablation,
                reference=reference,
            )
            return [
                self._result(s, b, question, interventions, table, tokens)
                for b, (table, tokens) in enumerate(tables)
            ]

    def _result(
        self,
        s: Session,
        b: int,
        question: QuestionT,
        interventions: InterventionSet | None,
        table: Any,
        tokens: Any,
    ) -> WhyResult:
        n = s.batch.lengths[b]
        ids = s.batch.tokens[b, :n].tolist()
        return WhyResult(
            model=self.model.cfg.name,
            question=question,
            description=s.question.describe(
                s.cap.answer[b], None if s.cap.keys is None else s.cap.keys[b]
            ),
            prompt=PromptInfo(ids=ids, tokens=str_tokens(s.view, ids)),
            targets=s.question.targets,
            distractors=s.question.distractors,
            answer_position=s.cap.answer[b],
            key_position=None if s.cap.keys is None else s.cap.keys[b],
            value=float(s.cap.value[b]),
            candidates=candidates(s.view, s.cap, b),
            table=table,
            tokens=tokens,
            interventions=interventions if interventions else None,
            sae_hooks=list(self.latents),
        )

    def attention(
        self,
        prompt: Prompt,
        question: AttentionScore,
        interventions: InterventionSet | None = None,
        *,
        top_k: int = 10,
    ) -> AttentionResult:
        """Why head (layer, head) attends from the query to the key position: the score split
        through the query side and the key side, and every head's token-pair view."""
        _check_k(top_k, 0)
        if not isinstance(question, AttentionScore):
            raise InputError("attention explanations need an attention question (L.H:q:k)")
        with self.session([prompt], question, interventions) as s:
            return attention_result(s.cap, top_k)

    def trace(
        self,
        prompt: Prompt,
        question: QuestionT,
        path: Sequence[Hop | str],
        direction: Literal["upstream", "downstream"] = "upstream",
        interventions: InterventionSet | None = None,
        *,
        top_k: int = 10,
    ) -> TraceResult:
        """Upstream: edges into the last node of `path`, restricted to the path (each hop upstream
        of the one before; heads optionally through q, k or v: "L1.H2:k"). Downstream: the later
        nodes and output tokens one node's write feeds."""
        _check_k(top_k, 0)
        hops = [h if isinstance(h, Hop) else Hop.parse(h) for h in path]
        with self.session([prompt], question, interventions) as s:
            return trace_result(s.cap, hops, direction, top_k)

    def compare(
        self,
        question: QuestionT,
        left: Side,
        right: Side,
        *,
        top_k: int = 10,
        measure: int = 8,
    ) -> Comparison:
        """The node table of two prompts (or one prompt under two intervention sets): left, right
        and right - left for every column; ranked by the difference."""
        _check_k(top_k, measure)
        with (
            self.session([left.prompt], question, left.interventions) as a,
            self.session([right.prompt], question, right.interventions) as b,
        ):
            rows, ranks = compare_rows(a.cap, b.cap, top_k)
            if measure:
                measure_both(
                    (a.view, b.view),
                    (a.cap, b.cap),
                    (a.plan, b.plan),
                    self.latents,
                    rows,
                    ranks,
                    measure,
                )
            sides = [
                SideSummary(
                    prompt=PromptInfo(
                        ids=(ids := s.batch.tokens[0, : s.batch.lengths[0]].tolist()),
                        tokens=str_tokens(s.view, ids),
                    ),
                    value=float(s.cap.value[0]),
                    candidates=candidates(s.view, s.cap, 0),
                    interventions=side.interventions or None,
                )
                for s, side in ((a, left), (b, right))
            ]
            return Comparison(
                model=self.model.cfg.name,
                description=a.question.describe(*_same_positions(a.cap, b.cap)),
                left=sides[0],
                right=sides[1],
                value_diff=sides[1].value - sides[0].value,
                rows=rows,
                rankings=ranks,
            )


def candidates(model: HookedTransformer, cap: Capture, b: int, k: int = 10) -> list[Candidate]:
    """Top next-token predictions at the answer position (empty for attention questions)."""
    if cap.logits is None:
        return []
    logits = cap.logits[b].float()
    probs = logits.softmax(-1)
    top = probs.topk(min(k, probs.numel()))
    return [
        Candidate(token=str_tokens(model, [i])[0], id=i, logit=float(logits[i]), prob=float(p))
        for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
    ]


def _same_positions(a: Capture, b: Capture) -> tuple[int | None, int | None]:
    """The answer and key positions when both sides of a comparison read the same ones."""
    ka = None if a.keys is None else a.keys[0]
    kb = None if b.keys is None else b.keys[0]
    if a.answer[0] == b.answer[0] and ka == kb:
        return a.answer[0], ka
    return None, None


def check_finite(cap: Capture, intervened: bool) -> None:
    """An `InputError` when the question's value, the logits it reads or the gradients the table is
    built from are inf or NaN (a steering coefficient or vector too large for the model's dtype)."""
    outputs = [cap.value] + ([cap.logits] if cap.logits is not None else [])
    grads = [cap.g_embed, *(t.g_z for t in cap.layers), *(lat.g_f for lat in cap.latents.values())]
    grads += [t.g_post for t in cap.layers if t.g_post is not None]
    grads += [t.g_experts for t in cap.layers if t.g_experts is not None]
    grads += [g for g in (cap.g_pos, cap.u) if g is not None]
    if not all(bool(t.isfinite().all()) for t in outputs):
        what = "the model's output" if cap.logits is not None else "the attention score"
        problem = f"{what} non-finite (inf/NaN)"
    elif not all(bool(t.isfinite().all()) for t in grads):
        problem = (
            "the gradients of the question's value non-finite (inf/NaN), so no attribution is "
            "defined"
        )
    else:
        return
    if intervened:
        raise InputError(
            f"the interventions made {problem}; use a smaller steering coefficient or vector"
        )
    raise InputError(f"this prompt makes {problem} without any intervention; check the weights")


def _check_k(top_k: int, measure: int) -> None:
    if not 1 <= top_k <= MAX_TOP_K:
        raise InputError(f"top_k must lie in 1..{MAX_TOP_K}, got {top_k}")
    if not 0 <= measure <= MAX_TOP_K:
        raise InputError(f"measure must lie in 0..{MAX_TOP_K}, got {measure}")


def why(
    model: HookedTransformer,
    prompt: Prompt,
    question: QuestionT,
    interventions: InterventionSet | None = None,
    *,
    saes: Sequence[Any] = (),
    **kw: Any,
) -> WhyResult:
    """`Debugger(model, saes).why(prompt, question, interventions, **kw)`."""
    return Debugger(model, saes).why(prompt, question, interventions, **kw)
