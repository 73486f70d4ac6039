"""Bad input: one clear message each, before any work starts."""

from __future__ import annotations

import pytest
import torch

from lenscope.errors import InputError
from lenscope.graphs.api import attribution_graph
from lenscope.graphs.build import GraphOptions, build_graph
from lenscope.sae.dictionary import Dictionary
from tests.graphs.helpers import PROMPT, random_transcoders, tiny


def test_transcoders_that_do_not_match_the_model() -> None:
    model = tiny(layers=2)
    dics = random_transcoders(model)
    with pytest.raises(InputError, match="missing 1"):
        build_graph(model, PROMPT, dics[:1])
    with pytest.raises(InputError, match="two transcoders read layer 0"):
        build_graph(model, PROMPT, [dics[0], dics[0], dics[1]])
    other = random_transcoders(tiny(layers=3))
    with pytest.raises(InputError, match=r"has layers 0\.\.1"):
        build_graph(model, PROMPT, other)
    wide = tiny()
    wide_dics = random_transcoders(wide)
    w = wide_dics[0].source
    w.cfg = type(w.cfg)(**{**w.cfg.__dict__, "d_in": 40, "d_out": 40})
    bad = Dictionary(
        hook_in=w.cfg.hook_in,
        hooks_out=(w.cfg.hook_out,),
        encode=w.encode,
        decoders=(torch.zeros(24, 40),),
        source=w,
    )
    with pytest.raises(InputError, match="40"):
        build_graph(model, PROMPT, [bad, dics[1]])
    resid = random_transcoders(model, hook="hook_resid_post")
    with pytest.raises(InputError, match="does not read an MLP's input"):
        build_graph(model, PROMPT, resid)
    no_enc = Dictionary(
        hook_in="blocks.0.hook_resid_mid",
        hooks_out=("blocks.0.hook_mlp_out",),
        encode=lambda x: x,
        decoders=(torch.zeros(32, 32),),
    )
    with pytest.raises(InputError, match="no linear encoder"):
        build_graph(model, PROMPT, [no_enc, dics[1]])


def test_models_a_graph_cannot_replace() -> None:
    model = tiny("attn_only")
    with pytest.raises(InputError, match="attention-only"):
        build_graph(model, PROMPT, [])


def test_prompts_tokens_thresholds_and_budget() -> None:
    from lenscope.attribution.questions import Logit

    model = tiny()
    dics = random_transcoders(model)
    with pytest.raises(InputError, match="at most 24"):
        build_graph(model, list(range(1, 30)), dics)
    with pytest.raises(InputError, match="at most 5"):
        build_graph(model, PROMPT, dics, options=GraphOptions(max_tokens=5))
    with pytest.raises(InputError, match="not in the vocabulary"):
        build_graph(model, PROMPT, dics, question=Logit(token=999))
    with pytest.raises(InputError, match=r"\(0, 1\]"):
        attribution_graph(model, PROMPT, dics, node_threshold=0)
    with pytest.raises(InputError, match=r"\(0, 1\]"):
        attribution_graph(model, PROMPT, dics, edge_threshold=1.01)
    with pytest.raises(InputError, match="GiB are available"):
        build_graph(model, PROMPT, dics, options=GraphOptions(max_feature_nodes=10**6))
    with pytest.raises(InputError, match="empty"):
        build_graph(model, [], dics)
