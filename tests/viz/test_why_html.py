"""The debugger's answer renders inline in notebooks: self-contained HTML that says what the
result says (value, candidates, every prompt token, the top components of each sign)."""

from __future__ import annotations

import html
import re

import pytest

from lenscope.attribution.api import Debugger
from lenscope.attribution.questions import Logit
from lenscope.interventions.spec import InterventionSet, ablate
from lenscope.viz.why_html import effect_colour, page_in_iframe, why_html
from tests.attribution.factory import prompt, random_model


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    return Debugger(random_model()).why(prompt(), Logit(token=5))


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


def test_the_fragment_says_what_the_result_says(result) -> None:  # type: ignore[no-untyped-def]
    out = result._repr_html_()
    assert out == why_html(result)
    text = _text(out)
    assert f"{result.value:+.4f}" in text and result.description in text
    assert out.count('<span title="position ') == len(result.prompt.tokens)
    for sign in ("positive", "negative"):
        for row in result.table.top("total_effect", "component", sign)[:8]:
            assert row.node in text
            assert f"{row.total_effect:+.3g}" in text
    for c in result.candidates[:8]:
        assert f"{100 * c.prob:.1f}%" in text


def test_self_contained_and_scoped(result) -> None:  # type: ignore[no-untyped-def]
    out = why_html(result)
    for banned in ("<script", "<style", "<link", "http://", "https://", "src="):
        assert banned not in out.lower()


def test_interventions_are_named() -> None:
    d = Debugger(random_model())
    r = d.why(prompt(), Logit(token=5), InterventionSet.of(*ablate("L1.H0")))
    assert "under 1 intervention(s)" in _text(why_html(r))


def test_colours_and_frames() -> None:
    assert effect_colour(0.0, 1.0) == "rgba(37,99,235,0.000)"
    assert effect_colour(2.0, 1.0) == "rgba(37,99,235,0.850)"  # clipped at the scale
    assert effect_colour(-0.5, 1.0) == "rgba(220,38,38,0.425)"
    page = '<!doctype html><style>body{color:red}</style><p>a & "b"</p>'
    frame = page_in_iframe(page)
    assert frame.startswith("<iframe srcdoc=") and "<style>" not in frame
    assert html.unescape(frame.split('srcdoc="')[1].split('" style=')[0]) == page
