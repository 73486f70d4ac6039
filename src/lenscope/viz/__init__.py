"""Shared renderers for the faces: heatmaps (PNG/SVG via matplotlib, self-contained HTML)."""

from lenscope.viz.heatmap import Heatmap, HeatmapSet, heatmaps_html, token_label

__all__ = ["Heatmap", "HeatmapSet", "heatmaps_html", "token_label"]
