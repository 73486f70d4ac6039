"""Every row type keyed by a node (table, attention side, comparison, edge) takes its node columns
from one builder: the id with and without positions, and the id's parts, as `NodeId` parses them."""

from __future__ import annotations

import dataclasses

import pytest

from lenscope.attribution.attention import SideRow
from lenscope.attribution.compare import CompareRow
from lenscope.attribution.results import EdgeRow, NodeColumns, NodeRow, node_fields, token_at
from lenscope.nodes import NodeId

LEADING = ["node", "component", "kind", "granularity", "layer", "index"]


@pytest.mark.parametrize(
    ("text", "component", "layer", "index", "position", "key_position"),
    [
        ("L1.H2@3:1", "L1.H2", 1, 2, 3, 1),
        ("L0.N5@2", "L0.N5", 0, 5, 2, None),
        ("L1.resid_post.F7", "L1.resid_post.F7", 1, 7, None, None),
        ("embed@0", "embed", None, None, 0, None),
    ],
)
def test_node_fields_are_the_ids_parts(
    text: str,
    component: str,
    layer: int | None,
    index: int | None,
    position: int | None,
    key_position: int | None,
) -> None:
    node = NodeId.parse(text)
    f = node_fields(node)
    assert f["node"] == text and f["component"] == component
    assert (f["layer"], f["index"]) == (layer, index)
    assert (f["position"], f["key_position"]) == (position, key_position)
    assert (f["kind"], f["granularity"]) == (node.kind, node.granularity)


def test_token_at_is_none_past_the_prompt() -> None:
    toks = ["a", "b", "c"]
    assert [token_at(toks, p) for p in (None, 0, 2, 3, 10)] == [None, "a", "c", None, None]


@pytest.mark.parametrize("row", [NodeRow, SideRow, CompareRow, EdgeRow])
def test_row_types_lead_with_the_node_columns_in_order(row: type[NodeColumns]) -> None:
    names = [f.name for f in dataclasses.fields(row)]
    assert names[: len(LEADING)] == LEADING
    assert issubclass(row, NodeColumns)
