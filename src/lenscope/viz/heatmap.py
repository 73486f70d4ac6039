"""Heatmaps of a grid (layer × position, layer × rank slot, ...): PNG/SVG and self-contained HTML.

One `Heatmap` renders two ways from the same colours: with matplotlib (Agg, no pyplot state) to
PNG/SVG files, and as an HTML `<table>` with inline styles (no script, no CDN, no external font)
that shows inline in JupyterLab, VS Code and any browser offline (`_repr_html_`). Darker always
means better: `better="low"` (ranks, entropy, KL) reverses the colour map. Row and column labels
carry the tokens; each cell shows its text where it fits and its exact value on hover (HTML).
"""

from __future__ import annotations

import html
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from matplotlib.colors import Colormap, Normalize
    from matplotlib.figure import Figure

FloatGrid = npt.NDArray[np.float64]

_FONT_PT = 8.0
_CHAR_IN = 0.62 * _FONT_PT / 72  # average glyph width in inches at the cell font size
_MAX_WIDTH_IN = 40.0
_HTML_MAX_CELLS = 20_000


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def token_label(tok: str) -> str:
    """A token as a readable one-line label: newlines, tabs, control characters and empty
    tokens made visible (`\\n`, `\\t`, `\\x0b`, `∅`)."""
    if tok == "":
        return "∅"
    return "".join(
        _ESCAPES.get(ch, f"\\x{ord(ch):02x}") if unicodedata.category(ch) == "Cc" else ch
        for ch in tok
    )


def _mpl_text(s: str) -> str:
    """Escape matplotlib's mathtext trigger so `$` in code tokens is drawn literally."""
    return s.replace("$", r"\$")


@dataclass
class Heatmap:
    """A labelled grid of numbers; `values[r, c]` is NaN for an empty cell.

    `cell_text` (same shape) replaces the formatted values as cell captions, e.g. the top token
    at each layer; `better` says which end of the scale is drawn dark.
    """

    values: FloatGrid
    row_labels: list[str]
    col_labels: list[str]
    title: str = ""
    better: Literal["high", "low"] = "high"
    log_scale: bool = False
    value_format: str = "{:.2g}"
    cell_text: list[list[str]] | None = None
    vmin: float | None = None
    vmax: float | None = None
    x_label: str = ""
    y_label: str = ""
    colorbar_label: str = ""
    cmap: str = "Purples"
    tooltips: list[list[str]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.ndim != 2:
            raise ValueError(f"heatmap values must be 2-D, got shape {self.values.shape}")
        r, c = self.values.shape
        if len(self.row_labels) != r or len(self.col_labels) != c:
            raise ValueError(
                f"labels ({len(self.row_labels)} rows, {len(self.col_labels)} cols) do not "
                f"match values {self.values.shape}"
            )
        for name, grid in (("cell_text", self.cell_text), ("tooltips", self.tooltips)):
            if grid is not None and (len(grid) != r or any(len(row) != c for row in grid)):
                raise ValueError(f"{name} must have the shape of values {self.values.shape}")

    # ---- colours -------------------------------------------------------------------------------
    def _norm(self) -> Normalize:
        from matplotlib.colors import LogNorm, Normalize

        finite = self.values[np.isfinite(self.values)]
        if self.log_scale:
            pos = finite[finite > 0]
            lo = self.vmin if self.vmin is not None else (float(pos.min()) if pos.size else 1.0)
            hi = self.vmax if self.vmax is not None else (float(pos.max()) if pos.size else 10.0)
            return LogNorm(vmin=lo, vmax=max(hi, lo * 10))
        lo = self.vmin if self.vmin is not None else (float(finite.min()) if finite.size else 0.0)
        hi = self.vmax if self.vmax is not None else (float(finite.max()) if finite.size else 1.0)
        return Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1.0)

    def _colormap(self) -> Colormap:
        import matplotlib

        cm = matplotlib.colormaps[self.cmap]
        return cm.reversed() if self.better == "low" else cm

    def _rgba(self) -> npt.NDArray[np.float64]:
        vals = self.values.copy()
        if self.log_scale:
            vals = np.where(vals > 0, vals, np.nan)
        normed = np.ma.masked_invalid(self._norm()(vals))
        rgba = np.asarray(self._colormap()(np.clip(normed.filled(0.0), 0.0, 1.0)))
        rgba[np.ma.getmaskarray(normed)] = (1.0, 1.0, 1.0, 1.0)
        return rgba

    def texts(self) -> list[list[str]]:
        """The caption of every cell: `cell_text`, or the formatted value ('' for NaN)."""
        if self.cell_text is not None:
            return self.cell_text
        return [
            ["" if not math.isfinite(v) else self.value_format.format(v) for v in row]
            for row in self.values.tolist()
        ]

    # ---- matplotlib ----------------------------------------------------------------------------
    def figure(self) -> Figure:
        """A matplotlib Figure (Agg canvas; no pyplot global state)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        rows, cols = self.values.shape
        texts = self.texts()
        longest = max((len(t) for row in texts for t in row), default=1)
        label_len = max((len(token_label(s)) for s in self.col_labels), default=1)
        cell_w = min(1.6, max(0.32, _CHAR_IN * longest + 0.12))
        cell_w = min(cell_w, _MAX_WIDTH_IN / max(cols, 1))
        cell_h = 0.3
        row_lab = max((len(s) for s in self.row_labels), default=1)
        left = 0.3 + _CHAR_IN * row_lab
        bottom = 0.5 + _CHAR_IN * min(label_len, 24)
        width = max(left + cols * cell_w + 1.4, left + 0.62 * (_FONT_PT + 2) / 72 * len(self.title))
        height = bottom + rows * cell_h + 0.7
        fig = Figure(figsize=(width, height))
        FigureCanvasAgg(fig)
        ax = fig.add_axes(
            (left / width, bottom / height, cols * cell_w / width, rows * cell_h / height)
        )
        rgba = self._rgba()
        ax.imshow(rgba, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(cols))
        ax.set_xticklabels(
            [_mpl_text(token_label(s)) for s in self.col_labels],
            rotation=90 if label_len > 3 else 0,
            fontsize=_FONT_PT,
            fontfamily="monospace",
        )
        ax.set_yticks(range(rows))
        ax.set_yticklabels([_mpl_text(s) for s in self.row_labels], fontsize=_FONT_PT)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        if self.x_label:
            ax.set_xlabel(self.x_label, fontsize=_FONT_PT + 1)
        if self.y_label:
            ax.set_ylabel(self.y_label, fontsize=_FONT_PT + 1)
        if self.title:
            ax.set_title(_mpl_text(self.title), fontsize=_FONT_PT + 2, loc="left")
        fits = cell_w >= _CHAR_IN * longest * 0.9 and rows * cols <= 4000
        if fits:
            for r in range(rows):
                for c in range(cols):
                    if texts[r][c]:
                        ax.text(
                            c,
                            r,
                            _mpl_text(token_label(texts[r][c])),
                            ha="center",
                            va="center",
                            fontsize=_FONT_PT,
                            color=_ink(rgba[r, c]),
                        )
        from matplotlib.cm import ScalarMappable

        sm = ScalarMappable(norm=self._norm(), cmap=self._colormap())
        cax = fig.add_axes(
            (
                (left + cols * cell_w + 0.25) / width,
                bottom / height,
                0.15 / width,
                rows * cell_h / height,
            )
        )
        cb = fig.colorbar(sm, cax=cax)
        cb.ax.tick_params(labelsize=_FONT_PT)
        if self.colorbar_label:
            cb.set_label(self.colorbar_label, fontsize=_FONT_PT)
        return fig

    def save(
        self, out_dir: Path | str, stem: str, formats: Sequence[str] = ("png", "svg")
    ) -> list[Path]:
        """Write `out_dir/stem.png` (and `.svg`); return the paths written."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        fig = self.figure()
        paths = []
        for fmt in formats:
            p = d / f"{stem}.{fmt}"
            fig.savefig(p, dpi=150 if fmt == "png" else None, format=fmt)
            paths.append(p)
        return paths

    # ---- HTML ----------------------------------------------------------------------------------
    def to_html(self) -> str:
        """A self-contained HTML fragment (inline styles only) showing the same grid."""
        rows, cols = self.values.shape
        if rows * cols > _HTML_MAX_CELLS:
            return (
                f"<div><b>{html.escape(self.title)}</b>: {rows}×{cols} cells is too large to "
                "show inline; save it as PNG with .save()</div>"
            )
        rgba = self._rgba()
        texts = self.texts()
        tips = self.tooltips
        th = "padding:1px 4px;font-weight:normal;white-space:pre;font-family:monospace;"
        out = [
            '<div class="lenscope-heatmap" style="overflow-x:auto;margin:4px 0;'
            'font-family:system-ui,sans-serif;font-size:11px">'
        ]
        if self.title:
            out.append(f'<div style="font-weight:600;margin:2px 0">{html.escape(self.title)}</div>')
        out.append('<table style="border-collapse:collapse;table-layout:auto">')
        out.append(f'<tr><th style="{th}">{html.escape(self.y_label)}</th>')
        for lab in self.col_labels:
            out.append(
                f'<th style="{th}vertical-align:bottom;writing-mode:vertical-rl;'
                f'transform:rotate(180deg)">{html.escape(token_label(lab))}</th>'
            )
        out.append("</tr>")
        for r in range(rows):
            out.append(
                f'<tr><th style="{th}text-align:right">{html.escape(self.row_labels[r])}</th>'
            )
            for c in range(cols):
                bg = _hex(rgba[r, c])
                v = self.values[r, c]
                tip = (
                    tips[r][c]
                    if tips is not None
                    else (
                        f"{self.row_labels[r]} · {token_label(self.col_labels[c])}: "
                        + ("—" if not math.isfinite(v) else f"{v:.6g}")
                    )
                )
                out.append(
                    f'<td title="{html.escape(tip)}" style="background:{bg};color:'
                    f"{_ink(rgba[r, c])};padding:2px 5px;text-align:center;white-space:pre;"
                    f'font-family:monospace;border:1px solid #fff">'
                    f"{html.escape(token_label(texts[r][c]) if texts[r][c] else '')}</td>"
                )
            out.append("</tr>")
        out.append("</table>")
        if self.x_label:
            out.append(f'<div style="color:#555">{html.escape(self.x_label)}</div>')
        out.append("</div>")
        return "".join(out)

    def _repr_html_(self) -> str:
        return self.to_html()


def heatmaps_html(maps: Sequence[Heatmap], title: str = "") -> str:
    """Several heatmaps as one self-contained HTML fragment."""
    head = f'<div style="font-weight:700;margin:4px 0">{html.escape(title)}</div>' if title else ""
    return f"<div>{head}{''.join(m.to_html() for m in maps)}</div>"


@dataclass
class HeatmapSet:
    """A titled list of heatmaps, each with a file stem; renders inline in notebooks."""

    maps: list[Heatmap]
    title: str = ""
    stems: list[str] = field(default_factory=list)

    def _stems(self) -> list[str]:
        return (
            self.stems
            if len(self.stems) == len(self.maps)
            else [f"heatmap{i}" for i in range(len(self.maps))]
        )

    def _repr_html_(self) -> str:
        return heatmaps_html(self.maps, self.title)

    def save(self, out_dir: Path | str, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
        """Write every heatmap as `out_dir/<stem>.png|svg`; return the paths."""
        paths: list[Path] = []
        for m, s in zip(self.maps, self._stems(), strict=True):
            paths += m.save(out_dir, s, formats)
        return paths

    def write_html(self, path: Path | str) -> Path:
        """A standalone HTML page (no script, no network) with every heatmap."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        page = (
            '<!doctype html><html><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title></head><body>"
            f"{heatmaps_html(self.maps, self.title)}</body></html>\n"
        )
        p.write_text(page, encoding="utf-8")
        return p


def _ink(rgba: Any) -> str:
    """Black or white text, whichever reads better on this background."""
    r, g, b = float(rgba[0]), float(rgba[1]), float(rgba[2])
    return "#ffffff" if 0.299 * r + 0.587 * g + 0.114 * b < 0.55 else "#111111"


def _hex(rgba: Any) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(round(float(x) * 255) for x in rgba[:3]))
