"""A Markov chain inline in notebooks: its circo drawing as SVG text (graphviz, in memory)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lenscope.markov.graph import MAX_DRAWN_STATES, GraphvizError, svg_text, to_dot

if TYPE_CHECKING:
    from lenscope.markov.chain import MarkovChain


def chain_svg(chain: MarkovChain) -> str | None:
    """The drawing, or None (so that the text repr shows) above MAX_DRAWN_STATES states or
    without graphviz."""
    if len(chain.states) > MAX_DRAWN_STATES:
        return None
    try:
        return svg_text(to_dot(chain))
    except GraphvizError:
        return None
