"""`lenscope why`: why does the model predict A rather than B (or attend from q to k)?

lenscope why MODEL "prompt" --target " A" --distractor " B" [--ablate NODE ...] [--trace NODE[:q|k|v]]
             [--attention L.H:q:k] [--sae PATH] [--top 10] [--measure 8] [--json]

Without --target the model's own top prediction is the target and its runner-up the distractor.
Several --trace options form a chain (each node upstream of the one before); --downstream traces
what one node's write feeds instead.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import typer
from rich.markup import escape
from rich.table import Table

from lenscope.attribution.api import Debugger, QuestionT
from lenscope.attribution.attention import AttentionResult
from lenscope.attribution.questions import AttentionScore, Logit, LogitDiff, Prob, TokenSpec
from lenscope.attribution.results import Hop, NodeRow, TraceResult, WhyResult
from lenscope.cli.common import DEVICE_OPTION, EMPTY_PROMPT, JSON_OPTION, console, print_json
from lenscope.cli.common import token_text as _tok
from lenscope.errors import InputError
from lenscope.interventions import (
    Ablate,
    Clamp,
    Intervention,
    InterventionSet,
    Patch,
    Prompt,
    Steer,
)
from lenscope.jsonable import JsonResult
from lenscope.model.transformer import HookedTransformer
from lenscope.nodes import NodeId, NodeKind, head_node_id

_ATTN = re.compile(r"^L?(\d+)\.H?(\d+):(-?\d+|last):(-?\d+)$", re.IGNORECASE)
_SUFFIX = re.compile(r"^(.+):([a-z]\w*)$", re.IGNORECASE)


@dataclass
class WhyReport(JsonResult):
    """Everything `lenscope why` computed (its --json output)."""

    result: WhyResult
    baseline_value: float | None = None  # the value without the interventions
    trace: TraceResult | None = None
    attention: AttentionResult | None = None


def _spec(text: str) -> TokenSpec:
    """A token given on the command line: text, or `#123` for an id."""
    return int(text[1:]) if re.fullmatch(r"#\d+", text) else text


def _positions(text: str, what: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise InputError(f"{what}: positions must be integers like @3,4, not {text!r}") from None


def parse_steer(text: str) -> Intervention:
    """`L2.resid_post.F7=4` or `L2.resid_post.F7=-2.5@3,4`: a Steer along the latent."""
    body, _, pos = text.partition("@")
    node, eq, coef = body.partition("=")
    if not eq:
        raise InputError(
            f"--steer takes LATENT=COEF[@POS,...], like L2.resid_post.F7=4; not {text!r}"
        )
    try:
        c = float(coef)
    except ValueError:
        raise InputError(f"--steer {text!r}: the coefficient {coef!r} is not a number") from None
    latent = NodeId.parse(node)
    if latent.kind is not NodeKind.LATENT:
        raise InputError(f"--steer steers along SAE latents (like L2.resid_post.F7), not {node!r}")
    positions = _positions(pos, f"--steer {text}") if pos else None
    return Steer(latent=str(latent.component), coefficient=c, positions=positions)


def parse_patch(text: str, source: str) -> Intervention:
    """`blocks.1.hook_resid_pre` or `blocks.1.hook_resid_pre@2,3`: patch from `source`."""
    hook, _, pos = text.partition("@")
    positions = _positions(pos, f"--patch {text}") if pos else None
    return Patch(hook=hook.strip(), source=source, positions=positions)


def parse_trace(text: str) -> Hop:
    """`L2.H5`, `L2.H5:k` (through the head's key input), `L0.N7@3`: one hop of --trace."""
    try:
        return Hop.parse(text)
    except InputError as e:
        m = _SUFFIX.match(text.strip())
        try:
            node = NodeId.parse(m.group(1)) if m else None
        except InputError:
            node = None
        if node is None or m is None:
            raise InputError(f"--trace: {e}") from None
        if node.kind is NodeKind.HEAD:
            raise InputError(
                f"--trace {text!r}: a head's input suffix is :q, :k or :v (like {node}:k), "
                f"not :{m.group(2)}"
            ) from None
        raise InputError(
            f"--trace {text!r}: only heads take an input suffix (:q, :k or :v), {node} does not"
        ) from None


def parse_attention(text: str) -> AttentionScore:
    m = _ATTN.match(text.strip())
    if not m:
        raise InputError(f"--attention {text!r}: expected L.H:q:k, e.g. 1.3:14:7 or L1.H3:last:7")
    q = None if m.group(3).lower() == "last" else int(m.group(3))
    return AttentionScore(
        layer=int(m.group(1)), head=int(m.group(2)), query_pos=q, key_pos=int(m.group(4))
    )


def _question(
    model: HookedTransformer,
    prompt: str,
    target: list[str],
    distractor: list[str],
    prob: bool,
    position: int | None,
) -> QuestionT:
    if distractor and not target:
        raise InputError("--distractor needs --target too")
    if target and distractor:
        return LogitDiff(
            target=[_spec(t) for t in target],
            distractor=[_spec(d) for d in distractor],
            position=position,
        )
    if target:
        if len(target) > 1:
            raise InputError("several --target tokens need a --distractor set to compare with")
        cls = Prob if prob else Logit
        return cls(token=_spec(target[0]), position=position)
    probe = Debugger(model).why(prompt, Logit(token=0, position=position), measure=0, top_k=1)
    a, b = probe.candidates[0], probe.candidates[1]
    return LogitDiff(target=[a.id], distractor=[b.id], position=position)


def _load_saes(model: HookedTransformer, paths: list[str]) -> list[Any]:
    """SAEs and transcoders by name or path (a transcoder set gives one dictionary per layer)."""
    if not paths:
        return []
    try:
        from lenscope.sae import check_compatible
        from lenscope.sae.io import load_dictionaries
    except ImportError:
        raise InputError("--sae needs the lenscope.sae package, which is not installed") from None
    out = []
    for p in paths:
        for dic in load_dictionaries(p, model, device=model.device):
            check_compatible(model, dic)
            out.append(dic)
    return out


def register(app: typer.Typer) -> None:
    @app.command()
    def why(
        model_name: str = typer.Argument(
            ..., metavar="MODEL", help="Model name or checkpoint dir."
        ),
        prompt: str = typer.Argument(..., help="The prompt (BOS is prepended as the model does)."),
        target: list[str] = typer.Option(
            [], "--target", "-t", help="Target token(s); #ID for ids."
        ),
        distractor: list[str] = typer.Option([], "--distractor", "-d", help="Distractor token(s)."),
        prob: bool = typer.Option(False, "--prob", help="Explain the target's probability."),
        position: int | None = typer.Option(None, "--position", help="Question position."),
        attention: str | None = typer.Option(None, "--attention", help="Explain L.H:q:k."),
        ablate: list[str] = typer.Option([], "--ablate", help="Ablate NODE (repeatable)."),
        ablate_mode: str = typer.Option("zero", "--ablate-mode", help="zero, mean or resample."),
        source: str | None = typer.Option(None, "--source", help="Resample source prompt."),
        reference: list[str] = typer.Option([], "--reference", help="Mean-ablation prompts."),
        steer: list[str] = typer.Option(
            [], "--steer", help="Steer along an SAE latent: LATENT=COEF[@POS,...] (repeatable)."
        ),
        patch: list[str] = typer.Option(
            [], "--patch", help="Patch HOOK[@POS,...] from the --source prompt (repeatable)."
        ),
        trace: list[str] = typer.Option([], "--trace", help="Trace NODE[:q|k|v] (chain)."),
        downstream: bool = typer.Option(False, "--downstream", help="Trace what NODE feeds."),
        sae: list[str] = typer.Option(
            [],
            "--sae",
            help="SAE or transcoder (name or folder, any supported layout) whose latents are nodes.",
        ),
        top: int = typer.Option(10, "--top", help="Rows per column."),
        measure: int = typer.Option(8, "--measure", help="Rows to measure by ablation."),
        device: str = DEVICE_OPTION,
        json: bool = JSON_OPTION,
    ) -> None:
        """Why the model predicts the target rather than the distractor: node table, candidates,
        token view; ablate nodes, trace nodes, explain an attention score."""
        from lenscope.model.load import load_model

        if not prompt:
            raise InputError(EMPTY_PROMPT)
        if ablate_mode not in ("zero", "mean", "resample"):
            raise InputError(f"--ablate-mode must be zero, mean or resample, not {ablate_mode!r}")
        if ablate_mode == "mean" and ablate and not reference:
            raise InputError(
                "--ablate-mode mean needs --reference PROMPT (repeatable): the prompts whose "
                "mean activations replace the ablated nodes"
            )
        hops = [parse_trace(x) for x in trace]
        model = load_model(model_name, device=device)
        dbg = Debugger(model, _load_saes(model, sae))
        question: QuestionT = (
            parse_attention(attention)
            if attention
            else _question(model, prompt, target, distractor, prob, position)
        )
        if ablate_mode == "resample" and ablate and source is None:
            raise InputError("--ablate-mode resample needs --source PROMPT")
        if patch and source is None:
            raise InputError("--patch needs --source PROMPT (the prompt to patch from)")
        items: list[Intervention] = [
            Ablate.model_validate(
                {"node": str(NodeId.parse(n)), "mode": ablate_mode, "source": source}
            )
            for n in ablate
        ]
        items += [parse_steer(x) for x in steer]
        items += [parse_patch(x, source or "") for x in patch]
        refs: list[Prompt] | None = [str(x) for x in reference] or None
        cuts = InterventionSet(interventions=items, reference=refs) if items else None
        with console.status("asking the model why…") if not json else nullcontext():
            result = dbg.why(prompt, question, cuts, top_k=top, measure=measure)
            report = WhyReport(result=result)
            if cuts:
                report.baseline_value = dbg.why(prompt, question, measure=0, top_k=1).value
            if trace:
                direction: Literal["upstream", "downstream"] = (
                    "downstream" if downstream else "upstream"
                )
                report.trace = dbg.trace(prompt, question, hops, direction, cuts, top_k=top)
            if isinstance(question, AttentionScore):
                report.attention = dbg.attention(prompt, question, cuts, top_k=top)
        if json:
            print_json(report)
            return
        render(report)


# ---- rendering ----------------------------------------------------------------------------------
def describe(i: Intervention) -> str:
    """One intervention in words, every field that says what it does (markup escaped)."""
    if isinstance(i, Ablate):
        src = f" from {_prompt(i.source)}" if i.mode == "resample" and i.source else ""
        return escape(f"ablate {i.node} ({i.mode}{src})")
    if isinstance(i, Clamp):
        return escape(f"clamp {i.node} to {i.value:g}")
    at = "" if i.positions is None else f" at positions {', '.join(map(str, i.positions))}"
    if isinstance(i, Patch):
        return escape(f"patch {i.hook}{at} from {_prompt(i.source)}")
    along = f"latent {i.latent}" if i.latent is not None else f"a vector (norm {_norm(i.vector)})"
    hook = f" at {i.hook}" if i.hook is not None else ""
    return escape(f"steer{hook} along {along} × {i.coefficient:g}{at}")


def _prompt(p: Prompt) -> str:
    return repr(p) if isinstance(p, str) else f"ids {p}"


def _norm(v: list[float] | None) -> str:
    return f"{sum(x * x for x in v or []) ** 0.5:.3g}"


def _f(v: float | None) -> str:
    return "" if v is None else f"{v:+.3f}"


def render(report: WhyReport) -> None:
    r = report.result
    toks = " ".join(f"[dim]{i}[/]{_tok(t)}" for i, t in enumerate(r.prompt.tokens))
    console.print(f"[bold]{escape(r.model)}[/] · {len(r.prompt.tokens)} tokens: {toks}")
    for label, infos in (("target", r.targets), ("distractor", r.distractors)):
        for info in infos:
            console.print(f"  {label} {escape(repr(info.asked))} → id {info.id} {_tok(info.token)}")
    line = f"[bold]{escape(r.description)}[/] at position {r.answer_position} = [bold]{r.value:+.4f}[/]"
    if report.baseline_value is not None:
        change = r.value - report.baseline_value
        line += f"  (without interventions {report.baseline_value:+.4f}; change {change:+.4f})"
    console.print(line)
    if r.interventions:
        console.print(
            "  under " + "; ".join(describe(i) for i in r.interventions.interventions),
            highlight=False,
        )
    if r.candidates:
        t = Table(title="top next tokens", title_justify="left")
        for col in ("token", "id", "prob", "logit"):
            t.add_column(col, justify="right" if col != "token" else "left")
        for c in r.candidates:
            t.add_row(_tok(c.token), str(c.id), f"{c.prob:.3f}", f"{c.logit:.2f}")
        console.print(t)
    for gran, title in (("component", "components"), ("position", "nodes at a position")):
        _node_table(r, gran, title)
    _token_view(r)
    sums = ", ".join(f"{s.kind.value} {s.direct_effect:+.3f}" for s in r.table.sums)
    console.print(
        f"direct effects by kind: {sums}; all nodes + biases = {r.table.direct_total:+.4f}"
    )
    if report.trace is not None:
        _trace_table(report.trace)
    if report.attention is not None:
        _attention(report.attention)


def _node_table(r: WhyResult, gran: str, title: str) -> None:
    pos = r.table.top("total_effect", gran, "positive")  # type: ignore[arg-type]
    neg = r.table.top("total_effect", gran, "negative")  # type: ignore[arg-type]
    rows: list[NodeRow] = pos[: max(1, len(pos))] + neg[:5]
    t = Table(title=f"{title}, by estimated total effect (act × grad)", title_justify="left")
    for c in ("node", "token", "activation", "write", "direct", "total", "ablation"):
        t.add_column(c, justify="left" if c in ("node", "token") else "right")
    for row in rows:
        tok = _tok(row.token) + ("←" + _tok(row.key_token) if row.key_token is not None else "")
        t.add_row(
            row.node,
            tok,
            _f(row.activation),
            "" if row.write_norm is None else f"{row.write_norm:.3f}",
            _f(row.direct_effect),
            _f(row.total_effect),
            _f(row.ablation_effect),
        )
    console.print(t)


def _token_view(r: WhyResult) -> None:
    t = Table(
        title="token view: which input tokens matter (activation × gradient summed there)",
        title_justify="left",
    )
    for c in ("pos", "token", "embedding", "", "heads from", "heads at", "neurons"):
        t.add_column(c, justify="left" if c in ("token", "") else "right")
    scale = max((abs(x.embed + (x.pos_embed or 0.0)) for x in r.tokens), default=0.0) or 1.0
    for row in r.tokens:
        e = row.embed + (row.pos_embed or 0.0)
        bar = ("[green]" if e >= 0 else "[red]") + "█" * round(10 * abs(e) / scale) + "[/]"
        t.add_row(
            str(row.position),
            _tok(row.token),
            _f(e),
            bar,
            _f(row.heads_key),
            _f(row.heads_query),
            _f(row.neurons),
        )
    console.print(t)


def _trace_table(tr: TraceResult) -> None:
    path = " ← ".join(str(h) for h in tr.path)
    t = Table(title=f"{tr.direction} of {path}", title_justify="left")
    for c in ("node", "token", "edge", "via q", "via k", "via v"):
        t.add_column(c, justify="left" if c in ("node", "token") else "right")
    for row in tr.rows[:30]:
        t.add_row(
            row.node, _tok(row.token), _f(row.edge), _f(row.via_q), _f(row.via_k), _f(row.via_v)
        )
    console.print(t)
    if tr.direction == "upstream":
        console.print(f"edges + biases into {tr.node} = {tr.edge_total:+.4f}")
    else:
        console.print(f"direct effect on the question: {_f(tr.direct_effect)}")
        up = ", ".join(f"{_tok(x.token)} {x.logit_change:+.2f}" for x in tr.promoted[:8])
        down = ", ".join(f"{_tok(x.token)} {x.logit_change:+.2f}" for x in tr.suppressed[:8])
        console.print(f"at position {tr.output_position} it pushes up {up}; down {down}")


def _attention(a: AttentionResult) -> None:
    console.print(
        f"[bold]{head_node_id(a.layer, a.head)}[/] attends from {a.query_position} "
        f"{_tok(a.prompt.tokens[a.query_position])} to {a.key_position} "
        f"{_tok(a.prompt.tokens[a.key_position])}: score {a.score:+.3f}, probability "
        f"{a.probability:.3f} (query side sums to {a.query_total:+.3f}, key side {a.key_total:+.3f})"
    )
    t = Table(title="what drives the score", title_justify="left")
    for c in ("node", "token", "query side", "key side"):
        t.add_column(c, justify="left" if c in ("node", "token") else "right")
    shown = [r for r in a.rows if r.granularity != "pair"]
    shown.sort(key=lambda r: -abs(r.query_side) - abs(r.key_side))
    for row in shown[:20]:
        t.add_row(row.node, _tok(row.token), _f(row.query_side), _f(row.key_side))
    console.print(t)
