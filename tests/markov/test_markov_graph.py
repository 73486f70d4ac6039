"""DOT text for the chain and rendering it with graphviz."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from lenscope.errors import InputError, LenscopeError
from lenscope.markov import GraphvizError, empirical_transitions, render, to_dot
from lenscope.markov.chain import MarkovChain, chain_from_probs

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed")


def karpathy_like() -> MarkovChain:
    # P(next token = 1) per state 000..111, close to the trained baby GPT of the seed
    p1 = np.array([0.73, 0.60, 0.55, 0.70, 0.62, 0.79, 0.995, 0.55])
    return chain_from_probs(np.stack([1 - p1, p1], axis=1), 2, 3)


def test_dot_edges_and_labels() -> None:
    dot = to_dot(karpathy_like())
    assert dot.startswith('digraph "markov_chain" {') and "layout=circo;" in dot
    assert '"101" -> "011" [label="1(79%)"' in dot
    assert '"101" -> "010" [label="0(21%)"' in dot
    assert '"111" -> "111" [label="1(55%)"' in dot
    assert '"111" -> "110" [label="0(45%)"' in dot
    assert '"000" -> "001" [label="1(73%)"' in dot
    assert '"110" -> "101" [label="1(100%)"' in dot
    assert '"110" -> "100"' not in dot  # 0.5% is below the 1% threshold
    assert dot.count("->") == 15
    assert to_dot(karpathy_like(), threshold=0.0).count("->") == 16
    assert to_dot(karpathy_like(), threshold=0.75).count("->") == 2


def test_dot_marks_seen_states() -> None:
    dot = to_dot(karpathy_like(), empirical_transitions("111101111011110", 2, 3))
    assert '"111" [style="filled,bold", fillcolor="lightblue"];' in dot
    assert '"000" [style="dashed"];' in dot
    assert "seen in training" in dot


def test_dot_bad_arguments() -> None:
    with pytest.raises(InputError, match="threshold"):
        to_dot(karpathy_like(), threshold=1.5)
    with pytest.raises(InputError, match="other states"):
        to_dot(karpathy_like(), empirical_transitions("1111011", 2, 2))


@needs_dot
def test_render_svg_and_png(tmp_path: Path) -> None:
    dot = to_dot(karpathy_like(), empirical_transitions("111101111011110", 2, 3))
    paths = render(dot, tmp_path / "out" / "baby.gpt")
    assert [p.name for p in paths] == ["baby.gpt.svg", "baby.gpt.png"]
    svg, png = (p.read_bytes() for p in paths)
    assert b"<svg" in svg and b"1(79%)" in svg
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


@needs_dot
def test_render_reports_graphviz_failure(tmp_path: Path) -> None:
    with pytest.raises(GraphvizError, match=r"graphviz failed to draw bad\.svg"):
        render("digraph { this is not dot", tmp_path / "bad", formats=("svg",))


def test_render_without_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LenscopeError, match="install graphviz"):
        render("digraph {}", tmp_path / "g")


def test_render_bad_format_or_engine(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown graph format 'jpg'"):
        render("digraph {}", tmp_path / "g", formats=("jpg",))
    with pytest.raises(InputError, match="unknown graphviz engine"):
        render("digraph {}", tmp_path / "g", engine="magic")


def test_a_chain_renders_inline_as_its_circo_drawing() -> None:
    chain = karpathy_like()
    svg = chain._repr_svg_()
    assert svg is not None and svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "1(79%)" in svg and "0(45%)" in svg
    assert svg.count('class="edge"') == to_dot(chain).count("->") == 15


def test_inline_drawing_falls_back_to_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    p1 = rng.uniform(0.05, 0.95, 2**7)
    big = chain_from_probs(np.stack([1 - p1, p1], axis=1), 2, 7)  # 128 states: illegible
    assert len(big.states) == 128 and big._repr_svg_() is None
    monkeypatch.setenv("PATH", str(tmp_path))  # no graphviz
    assert karpathy_like()._repr_svg_() is None
