"""Node ids: one canonical spelling, parsed back exactly, with clear errors for unknown ids."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from lenscope.errors import InputError
from lenscope.nodes import (
    LATENT_SITES,
    NodeId,
    NodeIdStr,
    NodeKind,
    head_node_id,
    latent_hook,
    latent_node_id,
    latent_prefix,
    latent_site,
    neuron_node_id,
    parse_latent_node_id,
    parse_node,
)

CANONICAL = [
    "L5.H3",
    "L5.H3@12",
    "L5.H3@12:4",
    "L2.N517",
    "L2.N517@7",
    "L6.resid_post.F1234",
    "L6.resid_pre.F0@3",
    "L0.attn_out.F9",
    "embed",
    "embed@3",
    "pos",
    "pos@0",
]


@pytest.mark.parametrize("text", CANONICAL)
def test_round_trip(text: str) -> None:
    node = NodeId.parse(text)
    assert str(node) == text
    assert NodeId.parse(str(node)) == node
    assert str(node.component) == text.split("@")[0]


def test_fields_hooks_and_granularity() -> None:
    n = parse_node("l5.h3@12:4")
    assert (n.kind, n.layer, n.index, n.position, n.key_position) == (NodeKind.HEAD, 5, 3, 12, 4)
    assert str(n) == "L5.H3@12:4" and n.granularity == "pair"
    assert n.hook_name == "blocks.5.attn.hook_pattern"
    assert parse_node("L5.H3@2").hook_name == "blocks.5.attn.hook_z"
    assert parse_node("L5.H3").granularity == "component"
    assert parse_node("L2.N7@1").hook_name == "blocks.2.mlp.hook_post"
    assert parse_node("L2.N7@1").granularity == "position"
    assert parse_node("L6.hook_resid_post.F1").hook_name == "blocks.6.hook_resid_post"
    assert parse_node("embed@1").hook_name == "hook_embed"
    assert parse_node("pos").hook_name == "hook_pos_embed"
    assert parse_node("L1.H2").at(4, 1) == parse_node("L1.H2@4:1")
    for site, hook in LATENT_SITES.items():
        assert latent_site(latent_hook(3, site)) == (3, site)
        assert latent_hook(3, site) == f"blocks.3.{hook}"


@pytest.mark.parametrize(
    "bad",
    ["", "L5", "H3", "L5.H", "L5.H3@", "L5.H3@1:2:3", "L2.N5@1:2", "L1.X3", "embed@x", "l1h2"],
)
def test_unknown_ids_are_input_errors(bad: str) -> None:
    with pytest.raises(InputError, match="unknown node id"):
        NodeId.parse(bad)


def test_checks_against_a_model() -> None:
    dims = dict(n_layers=4, n_heads=8, d_mlp=64, latent_sizes={"blocks.2.hook_resid_post": 16})
    assert parse_node("L3.H7@5:5").check(**dims, n_tokens=6)  # type: ignore[arg-type]
    cases = {
        "L4.H0": "layer 4 does not exist",
        "L1.H8": "head 8 does not exist",
        "L1.N64": "neuron 64 does not exist",
        "L2.resid_post.F16": "latent 16 does not exist",
        "L1.resid_post.F1": "no SAE is spliced at blocks.1.hook_resid_post",
        "L1.H2@6": "beyond the prompt",
        "L1.H2@3:4": "earlier keys",
    }
    for text, message in cases.items():
        with pytest.raises(InputError, match=message):
            parse_node(text).check(**dims, n_tokens=6)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="attention-only"):
        parse_node("L0.N1").check(n_layers=2, n_heads=2, d_mlp=None)
    with pytest.raises(InputError, match="no learned position"):
        parse_node("pos@1").check(n_layers=2, n_heads=2, d_mlp=None, has_pos=False)
    with pytest.raises(InputError, match="residual-stream hooks"):
        parse_node("L1.post.F3")
    with pytest.raises(InputError, match="not a residual-stream hook"):
        latent_site("blocks.1.mlp.hook_post")


def test_pydantic_fields_canonicalise_and_reject() -> None:
    class Req(BaseModel):
        node: NodeIdStr

    assert Req(node="l1.h2@3").node == "L1.H2@3"
    with pytest.raises(ValidationError, match="unknown node id"):
        Req(node="L1.Z2")


def test_builders_give_the_canonical_ids_that_parse_back() -> None:
    for layer, i in ((0, 0), (3, 17), (11, 4095)):
        head, neuron = head_node_id(layer, i), neuron_node_id(layer, i)
        assert (head, neuron) == (f"L{layer}.H{i}", f"L{layer}.N{i}")
        assert NodeId.parse(head) == NodeId(NodeKind.HEAD, layer, i)
        assert NodeId.parse(neuron) == NodeId(NodeKind.NEURON, layer, i)
        for site, hook in LATENT_SITES.items():
            name = f"blocks.{layer}.{hook}"
            node = NodeId.parse(latent_node_id(name, i))
            assert (node.kind, node.layer, node.index, node.site) == (
                NodeKind.LATENT,
                layer,
                i,
                site,
            )
            assert node.hook_name == name and latent_prefix(name) == f"L{layer}.{site}"
            assert parse_latent_node_id(str(node)) == (name, i)
    assert latent_prefix("blocks.2.attn.hook_z") == "L2.attn.z"
    assert parse_latent_node_id("L2.attn.z.F5") == ("blocks.2.attn.hook_z", 5)
