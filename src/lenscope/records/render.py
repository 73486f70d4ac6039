"""A node's record in the terminal (rich): tokens shaded by activation, stats, effects, explanation."""

from __future__ import annotations

import math

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from lenscope.records.results import Example, NodeRecord, TokenEffect

_BARS = " ▁▂▃▄▅▆▇█"


def _shade(a: float, scale: float, blue: bool = False) -> str:
    if not math.isfinite(a) or scale <= 0 or a <= 0:
        return ""
    x = min(a / scale, 1.0)
    fade = int(255 - 200 * x)
    rgb = f"rgb({fade},{fade},255)" if blue else f"rgb(255,{fade},{int(fade * 0.8)})"
    return f"black on {rgb}"


def _tok(t: str) -> str:
    return t.replace("\n", "↵").replace("\t", "→").replace("\r", "␍")


def example_text(
    e: Example, scale: float, attention: bool = False, floor: float = 0.0, mark: bool = False
) -> Text:
    """One example: its activation, then its tokens shaded (attention: shaded by attention), the
    example's own token bold and underlined, and with `mark` also between ⟦ ⟧ (for output
    without styles: a pipe or a file)."""
    out = Text(f"{e.activation:8.3g}  ", style="dim")
    values = e.attn if attention and e.attn is not None else e.acts
    for i, (tok, a) in enumerate(zip(e.tokens, values, strict=True)):
        style = _shade(a, 1.0, True) if attention else _shade(a - floor, scale - floor)
        text = _tok(tok)
        if i == e.center:
            style = (style + " bold underline").strip()
            text = f"⟦{text}⟧" if mark else text
        out.append(text, style=style or None)
    return out


def sparkline(counts: list[int]) -> str:
    """Bars on a log scale (log(1 + count)), so that the tail stays visible."""
    top = math.log1p(max(counts)) if counts and max(counts) > 0 else 1.0
    return "".join(_BARS[min(8, math.ceil(8 * math.log1p(c) / top))] for c in counts)


def _effects(title: str, effects: list[TokenEffect]) -> Table:
    t = Table(title=title, show_header=False, box=None, pad_edge=False)
    for x in effects:
        left = f"{x.source!r} → {x.token!r}" if x.source is not None else repr(x.token)
        t.add_row(left, f"{x.value:+.3g}")
    return t


def render_record(console: Console, r: NodeRecord, n_examples: int = 6) -> None:
    s = r.stats
    scale = r.shade_scale
    mark = console.color_system is None  # no styles reach the output: mark the token in text
    floor = r.shade_floor
    console.print(Text.assemble((r.node_id, "bold"), f"  {r.kind} · {r.model} · {r.hook}"))
    for x in r.explanations:
        if x.status == "ok":
            score = "n/a" if x.score is None else f"{x.score:.3f}"
            ctrl = "n/a" if x.control is None else f"{x.control:.3f}"
            console.print(
                Panel(
                    f"{x.text}\n[dim]score {score} · shuffled control {ctrl} · "
                    f"{x.n_tokens} held-out tokens[/]",
                    title=f"{x.explainer}" + (f" ({x.model})" if x.model else ""),
                    title_align="left",
                )
            )
        else:
            console.print(f"[red]{x.explainer}: explanation failed[/] ({x.error})")
    if not r.explanations:
        console.print("[dim]no explanation yet (lenscope explain)[/]")
    stats = Table(show_header=False, box=None)
    for k, v in s.labelled():
        stats.add_row(k, v)
    spark = sparkline(r.histogram.counts)
    half = len(spark) // 2
    lo, hi = f"{r.histogram.lo:.3g}", f"{r.histogram.hi:.3g}"
    hist = Text(f"{spark}\n{lo.ljust(half)}{hi.rjust(len(spark) - half)}")
    grid = Table.grid(padding=(0, 4))
    grid.add_row(
        stats,
        Group(Text("histogram (log)", style="dim"), hist),
        _effects("boosts", r.boosts[:8]),
        _effects("suppresses", r.suppresses[:8]),
    )
    console.print(grid)
    console.print(Text("top activations", style="bold"))
    for e in r.top[:n_examples]:
        console.print(example_text(e, scale, floor=floor, mark=mark))
        if e.attn is not None:
            console.print(
                Text("          attends: ", style="dim")
                + example_text(e, scale, True, mark=mark)[10:]
            )
    if r.random:
        console.print(Text("random sample", style="bold"))
        for e in r.random[: max(2, n_examples // 3)]:
            console.print(example_text(e, scale, floor=floor, mark=mark))
    for q in r.quantiles:
        if q.examples:
            console.print(
                Text(f"quantile ≥ {q.level_lo:g} (activation ≥ {q.lo:.3g})", style="bold")
            )
            console.print(example_text(q.examples[0], scale, floor=floor, mark=mark))
