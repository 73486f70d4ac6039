"""The debugger's results are dataclasses whose `to_json()` (the CLI's --json) is exactly what
pydantic writes for them over HTTP, and the JSON form holds the numbers of the object."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from pydantic import TypeAdapter

from lenscope.attribution import attention, compare, results
from lenscope.attribution.api import Debugger
from lenscope.attribution.compare import Side
from lenscope.attribution.questions import AttentionScore, LogitDiff
from lenscope.interventions.spec import InterventionSet, ablate
from lenscope.jsonable import JsonResult, to_jsonable
from tests.attribution.factory import prompt, random_model

Q = LogitDiff(target=[5], distractor=[11])
INPUTS = {"Hop", "Side"}  # validated inputs stay pydantic models


def _plain(x: Any) -> Any:
    return json.loads(json.dumps(x, allow_nan=False))


@pytest.fixture(scope="module")
def answers() -> list[Any]:
    dbg = Debugger(random_model("gpt2"))
    ids = prompt(9, seed=1)
    cut = InterventionSet.of(*ablate("L1.H2"))
    return [
        dbg.why(ids, Q, cut, measure=2),
        dbg.trace(ids, Q, ["L1.H2"], "upstream"),
        dbg.trace(ids, Q, ["L0.H1"], "downstream"),
        dbg.compare(Q, Side(prompt=ids), Side(prompt=ids, interventions=cut), measure=2),
        dbg.attention(ids, AttentionScore(layer=1, head=2, query_pos=8, key_pos=3)),
    ]


def test_to_json_is_what_pydantic_serialises(answers: list[Any]) -> None:
    for r in answers:
        got = _plain(r.to_json())
        assert got == _plain(TypeAdapter(type(r)).dump_python(r, mode="json")), type(r).__name__
        assert _plain(to_jsonable(r)) == got


def test_json_holds_the_objects_numbers(answers: list[Any]) -> None:
    why, up, _, cmp, att = answers
    j = why.to_json()
    assert j["value"] == why.value and j["question"]["target"] == [5]
    assert [r["node"] for r in j["table"]["rows"]] == [r.node for r in why.table.rows]
    assert j["interventions"] == why.interventions.model_dump()
    assert up.to_json()["path"] == [{"node": "L1.H2", "via": None}]
    assert cmp.to_json()["value_diff"] == cmp.value_diff
    assert att.to_json()["query_total"] == att.query_total


def test_result_types_are_one_family() -> None:
    found = 0
    for mod in (results, compare, attention):
        for name, obj in vars(mod).items():
            if not isinstance(obj, type) or obj.__module__ != mod.__name__ or name in INPUTS:
                continue
            if name[0].isupper() and name not in {"Column"}:
                found += 1
                assert dataclasses.is_dataclass(obj) and issubclass(obj, JsonResult), name
    assert found >= 20
