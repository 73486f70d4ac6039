"""Shared renderers for the faces: heatmaps (PNG/SVG via matplotlib, self-contained HTML)."""

from lenscope.viz.heatmap import HeatmapSet

__all__ = [
    "HeatmapSet",
]
