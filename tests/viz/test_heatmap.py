"""Heatmaps: files written, darker = better in both renderings, self-contained escaped HTML."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import LogNorm, Normalize
from matplotlib.image import imread

from lenscope.viz.heatmap import Heatmap, HeatmapSet, token_label


def _cells(html: str) -> list[tuple[str, str]]:
    """(background, text) of every <td>, in row order."""
    return re.findall(
        r'<td title="[^"]*" style="background:(#[0-9a-f]{6});[^>]*>([^<]*)</td>', html
    )


def _luminance(hex_colour: str) -> float:
    r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.299 * r + 0.587 * g + 0.114 * b


def _hex(rgba: tuple[float, ...]) -> str:
    return "#" + "".join(f"{round(x * 255):02x}" for x in rgba[:3])


def test_html_colours_follow_the_colormap_and_darker_is_better() -> None:
    vals = np.array([[1.0, 10.0, 100.0], [2.0, np.nan, 1000.0]])
    rank = Heatmap(vals, ["embed", "L0.post"], ["a", "b", "c"], better="low", log_scale=True)
    cells = _cells(rank.to_html())
    assert len(cells) == 6
    cmap = matplotlib.colormaps["Purples"].reversed()
    norm = LogNorm(vmin=1.0, vmax=1000.0)
    for (bg, text), v in zip(cells, vals.flatten(), strict=True):
        if np.isnan(v):
            assert bg == "#ffffff" and text == ""
        else:
            assert bg == _hex(cmap(float(norm(v)))) and text == f"{v:.2g}"
    lum = [_luminance(bg) for bg, _ in cells]
    assert lum[0] < lum[1] < lum[2]  # rank 1 darkest

    prob = Heatmap(np.array([[0.1, 0.9]]), ["x"], ["p", "q"], better="high", vmin=0, vmax=1)
    (bg0, _), (bg1, _) = _cells(prob.to_html())
    assert _luminance(bg1) < _luminance(bg0)
    cmap2 = matplotlib.colormaps["Purples"]
    assert bg1 == _hex(cmap2(float(Normalize(0, 1)(0.9))))


def test_html_is_self_contained_and_escapes_tokens() -> None:
    hm = Heatmap(
        np.array([[0.5, 0.2]]),
        ["L0.post"],
        ["<b>x</b>", "a\nb"],
        title='keys & "cabinet"',
        cell_text=[["<script>", "$x$"]],
    )
    html = hm.to_html()
    assert hm._repr_html_() == html
    assert "<script" not in html and "http" not in html and "src=" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "a\\nb" in html and "&lt;script&gt;" in html
    assert "keys &amp; &quot;cabinet&quot;" in html


def test_png_and_svg_written_and_grow_with_the_grid(tmp_path: Path) -> None:
    small = Heatmap(np.arange(6.0).reshape(2, 3), ["embed", "L0.post"], ["$", "$x", "\t"])
    big = Heatmap(np.arange(24.0).reshape(3, 8), ["a", "b", "c"], [f"t{i}" for i in range(8)])
    p_small = small.save(tmp_path, "small")
    p_big = big.save(tmp_path, "big")
    assert [p.name for p in p_small] == ["small.png", "small.svg"]
    a, b = imread(p_small[0]), imread(p_big[0])
    assert b.shape[1] > a.shape[1] and b.shape[0] > a.shape[0]
    assert p_small[1].read_text().lstrip().startswith("<?xml")
    page = HeatmapSet([small, big], "two", ["s", "b"])
    out = page.save(tmp_path / "set")
    assert sorted(p.name for p in out) == ["b.png", "b.svg", "s.png", "s.svg"]
    doc = page.write_html(tmp_path / "set" / "page.html").read_text()
    assert doc.startswith("<!doctype html>") and doc.count("<table") == 2


def test_bad_shapes_and_labels() -> None:
    with pytest.raises(ValueError, match="labels"):
        Heatmap(np.zeros((2, 2)), ["a"], ["x", "y"])
    with pytest.raises(ValueError, match="cell_text"):
        Heatmap(np.zeros((1, 2)), ["a"], ["x", "y"], cell_text=[["only one"]])
    assert token_label("") == "∅" and token_label("a\x0b\n") == "a\\x0b\\n"
