"""A node's record as one self-contained HTML page (inline CSS and SVG, no scripts, no network)."""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lenscope.records.results import Example, Explanation, NodeRecord, TokenEffect

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:70rem;
color:#1b1f24;padding:0 1rem}h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.1rem;
margin-top:1.8rem;border-bottom:1px solid #ddd}.sub{color:#57606a}.ex{font-family:ui-monospace,
Menlo,Consolas,monospace;font-size:.85rem;line-height:1.9;margin:.3rem 0;padding:.3rem .5rem;
background:#fafafa;border-left:3px solid #ddd;white-space:pre-wrap;word-break:break-all}
.ex .v{color:#57606a;font-size:.75rem;margin-right:.6rem}.t{border-radius:2px;padding:1px 0}
.c{outline:1.5px solid #1b1f24}table{border-collapse:collapse;font-size:.9rem}td,th{padding:.15rem
.6rem;text-align:left}th{color:#57606a;font-weight:500}.num{text-align:right;font-variant-numeric:
tabular-nums}.expl{background:#f3f8ff;padding:.6rem .8rem;border-radius:4px;margin:.4rem 0}
.bad{background:#fff3f3}.cols{display:flex;gap:3rem;flex-wrap:wrap}.attn{font-size:.75rem;
color:#57606a}
"""


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def show_token(t: str) -> str:
    """A token as visible text: newlines and tabs drawn, other whitespace kept."""
    return t.replace("\n", "\u21b5\n").replace("\t", "\u2192   ").replace("\r", "\u240d")


def _color(a: float, scale: float, rgb: tuple[int, int, int] = (255, 90, 60)) -> str:
    if not math.isfinite(a) or scale <= 0:
        return "transparent"
    x = max(min(a / scale, 1.0), 0.0)
    return f"rgba({rgb[0]},{rgb[1]},{rgb[2]},{x * 0.85:.3f})" if x > 0 else "transparent"


def _example(e: Example, scale: float, floor: float = 0.0) -> str:
    spans = []
    for i, (tok, a) in enumerate(zip(e.tokens, e.acts, strict=True)):
        cls = "t c" if i == e.center else "t"
        spans.append(
            f'<span class="{cls}" style="background:{_color(a - floor, scale - floor)}" '
            f'title="{_e(f"{tok!r}: {a:.4g}")}">{_e(show_token(tok))}</span>'
        )
    out = f'<div class="ex"><span class="v">{e.activation:.3g}</span>{"".join(spans)}'
    if e.attn is not None:
        att = []
        for i, (tok, w) in enumerate(zip(e.tokens, e.attn, strict=True)):
            style = f"background:{_color(w, 1.0, (60, 120, 255))}"
            cls = "t c" if i == e.center else "t"
            att.append(
                f'<span class="{cls}" style="{style}" title="attention {w:.3f}">'
                f"{_e(show_token(tok))}</span>"
            )
        out += f'\n<span class="attn">attends to:</span> {"".join(att)}'
    doc = f' <span class="v">{_e(e.doc)}</span>' if e.doc else ""
    return out + doc + "</div>"


def _hist_svg(r: NodeRecord) -> str:
    counts = r.histogram.counts
    top = math.log1p(max(counts)) if counts and max(counts) > 0 else 1.0
    w, h, n = 480, 90, len(counts)
    bw = w / n
    bars = []
    for i, c in enumerate(counts):
        bh = h * math.log1p(c) / top
        fill = "#999" if i in (0, n - 1) else "#e0623c"
        bars.append(
            f'<rect x="{i * bw:.1f}" y="{h - bh:.1f}" width="{bw - 1:.1f}" height="{bh:.1f}" '
            f'fill="{fill}"><title>{c:,}</title></rect>'
        )
    lo, hi = r.histogram.lo, r.histogram.hi
    return (
        f'<svg width="{w}" height="{h + 16}" role="img" aria-label="activation histogram">'
        f'{"".join(bars)}<text x="0" y="{h + 13}" font-size="11">&lt;{lo:.3g}</text>'
        f'<text x="{w}" y="{h + 13}" font-size="11" text-anchor="end">&ge;{hi:.3g}</text></svg>'
    )


def _effects(title: str, effects: list[TokenEffect]) -> str:
    rows = "".join(
        f"<tr><td>{_e(repr(x.source)) + ' &rarr; ' if x.source is not None else ''}"
        f"{_e(repr(x.token))}</td><td class=num>{x.value:+.3g}</td></tr>"
        for x in effects
    )
    return f"<div><h3>{_e(title)}</h3><table>{rows}</table></div>"


def _explanation(x: Explanation) -> str:
    if x.status != "ok":
        return f'<div class="expl bad"><b>{_e(x.explainer)}</b>: failed ({_e(x.error)})</div>'
    score = "n/a" if x.score is None else f"{x.score:.3f}"
    ctrl = "n/a" if x.control is None else f"{x.control:.3f}"
    return (
        f'<div class="expl"><b>{_e(x.explainer)}</b>{" (" + _e(x.model) + ")" if x.model else ""}: '
        f"{_e(x.text)}<br><span class=sub>score {score} (shuffled control {ctrl}) over "
        f"{x.n_tokens} held-out tokens</span></div>"
    )


def render_html(r: NodeRecord) -> str:
    """The page for one node's record."""
    s = r.stats
    scale = r.shade_scale
    floor = r.shade_floor
    st = "".join(f"<tr><th>{_e(k)}</th><td class=num>{v}</td></tr>" for k, v in s.labelled())
    quant = ""
    for q in r.quantiles:
        rng = f"{q.level_lo:g}-{q.level_hi:g}" if q.level_hi is not None else f"&ge; {q.level_lo:g}"
        quant += f"<h3>quantile {rng} (activation &ge; {q.lo:.3g})</h3>"
        quant += "".join(_example(e, scale, floor) for e in q.examples) or "<p class=sub>none</p>"
    expl = "".join(_explanation(x) for x in r.explanations) or "<p class=sub>no explanation yet</p>"
    kind_note = (
        (
            "the norm of what the head writes at each token; blue: its attention from the "
            "example token"
        )
        if r.kind == "head"
        else "activation"
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{_e(r.node_id)} · {_e(r.model)}</title><style>{CSS}</style></head><body>
<h1>{_e(r.node_id)}</h1><div class="sub">{_e(r.kind)} · {_e(r.model)} ({_e(r.fingerprint)}) · {_e(r.hook)}</div>
<h2>Explanation</h2>{expl}
<div class="cols"><div><h2>Statistics</h2><table>{st}</table></div>
<div><h2>Histogram</h2>{_hist_svg(r)}<div class=sub>log scale, sampled on {r.histogram.sample_rate:.1%} of rows;
grey: outside the range</div></div></div>
<h2>Output-token effects</h2><div class="cols">{_effects("boosts", r.boosts)}{_effects("suppresses", r.suppresses)}</div>
<h2>Top activations</h2><div class=sub>shading: {kind_note}; outlined: the example token</div>
{"".join(_example(e, scale, floor) for e in r.top)}
<h2>Random sample</h2>{"".join(_example(e, scale, floor) for e in r.random)}
<h2>Quantile samples</h2>{quant}
</body></html>
"""
