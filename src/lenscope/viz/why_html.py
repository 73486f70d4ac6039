"""The debugger's answer (`WhyResult`) as self-contained HTML for notebooks.

Inline styles only (no stylesheet that could restyle the notebook, no script, no network), so it
renders the same in JupyterLab, VS Code and a saved page offline. Shown: the question and its
value, the next-token candidates, the prompt coloured by each token's total effect (blue raises
the value, red lowers it, as on the page), and the components with the largest estimated total
effects of each sign beside their measured ablation effects.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from lenscope.viz.heatmap import token_label

if TYPE_CHECKING:
    from lenscope.attribution.results import NodeRow, WhyResult

_CELL = "padding:2px 8px;text-align:right;font-variant-numeric:tabular-nums"
_HEAD = "padding:2px 8px;text-align:right;color:#57606a;font-weight:500"
_MONO = "font-family:ui-monospace,Menlo,Consolas,monospace"


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def effect_colour(v: float, scale: float) -> str:
    """Blue for positive, red for negative, alpha by |v| / scale (white at 0)."""
    a = 0.0 if scale <= 0 else min(abs(v) / scale, 1.0) * 0.85
    rgb = "37,99,235" if v >= 0 else "220,38,38"
    return f"rgba({rgb},{a:.3f})"


def _num(v: float | None, digits: int = 3) -> str:
    return "–" if v is None else f"{v:+.{digits}g}"


def _rows(rows: list[NodeRow], scale: float) -> str:
    out = []
    for r in rows:
        bg = effect_colour(r.total_effect, scale)
        out.append(
            f'<tr><td style="padding:2px 8px;{_MONO}">{_e(r.node)}</td>'
            f'<td style="{_CELL}">{_num(r.activation)}</td>'
            f'<td style="{_CELL}">{_num(r.direct_effect)}</td>'
            f'<td style="{_CELL};background:{bg}">{_num(r.total_effect)}</td>'
            f'<td style="{_CELL}">{_num(r.ablation_effect)}</td></tr>'
        )
    return "".join(out)


def why_html(r: WhyResult, k: int = 8) -> str:
    """One HTML fragment: value, candidates, coloured prompt, top components of each sign."""
    table = r.table
    pos = table.top("total_effect", "component", "positive")[:k]
    neg = table.top("total_effect", "component", "negative")[:k]
    scale = max([abs(x.total_effect) for x in pos + neg] + [1e-12])
    token_total = {t.position: t.embed + (t.pos_embed or 0.0) for t in r.tokens}
    tok_scale = max([abs(v) for v in token_total.values()] + [1e-12])
    spans = []
    for i, tok in enumerate(r.prompt.tokens):
        v = token_total.get(i, 0.0)
        edge = "outline:1.5px solid #1b1f24;" if i == r.answer_position else ""
        spans.append(
            f'<span title="position {i}: embedding total effect {v:+.4g}" '
            f'style="{_MONO};background:{effect_colour(v, tok_scale)};{edge}'
            f'padding:1px 2px;margin:1px;border-radius:2px">{_e(token_label(tok))}</span>'
        )
    cands = "".join(
        f'<tr><td style="padding:1px 8px;{_MONO}">{_e(token_label(c.token))}</td>'
        f'<td style="{_CELL}">{100 * c.prob:.1f}%</td><td style="{_CELL}">{c.logit:.2f}</td></tr>'
        for c in r.candidates[:k]
    )
    head = "".join(
        f'<th style="{_HEAD}">{h}</th>'
        for h in ("activation", "direct", "est. total", "measured ablation")
    )
    tables = "".join(
        f'<div><div style="font-weight:600;margin:6px 0 2px">{title}</div>'
        f'<table style="border-collapse:collapse;font-size:12px">'
        f'<tr><th style="{_HEAD};text-align:left">node</th>{head}</tr>{_rows(rows, scale)}</table>'
        "</div>"
        for title, rows in (("raise the value", pos), ("lower the value", neg))
    )
    under = ""
    if r.interventions is not None and r.interventions.interventions:
        under = f" under {len(r.interventions.interventions)} intervention(s)"
    return (
        '<div style="font-family:system-ui,sans-serif;font-size:13px;color:#1b1f24">'
        f'<div style="margin:2px 0"><b>{_e(r.model)}</b>: {_e(r.description)} at position '
        f"{r.answer_position} = <b>{r.value:+.4f}</b>{_e(under)}</div>"
        f'<div style="margin:6px 0;line-height:2">{"".join(spans)}</div>'
        '<div style="display:flex;gap:28px;flex-wrap:wrap;align-items:flex-start">'
        f'<div><div style="font-weight:600;margin:6px 0 2px">next-token candidates</div>'
        f'<table style="border-collapse:collapse;font-size:12px">{cands}</table></div>'
        f"{tables}</div>"
        '<div style="color:#57606a;font-size:11px;margin-top:4px">components by estimated total '
        "effect (activation × gradient); measured ablation: the value's change when the node is "
        "ablated (top rows only). Prompt tokens coloured by their embedding's total effect: blue "
        "raises the value, red lowers it; outlined: the answer position.</div></div>"
    )


def page_in_iframe(page: str, height: int = 640) -> str:
    """A whole HTML page shown inside a notebook cell without its stylesheet leaking out."""
    return (
        f'<iframe srcdoc="{html.escape(page, quote=True)}" '
        f'style="width:100%;height:{height}px;border:1px solid #ddd"></iframe>'
    )
