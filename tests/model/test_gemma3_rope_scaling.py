"""Gemma 3 with linear rope scaling on its global layers (the 4B and larger checkpoints), from a
checkpoint that `transformers` built and saved: the shared equivalence checks, the scaling bites
(dropping it breaks the match), decoding with the cache crosses the window, and replaying blocks
with the first layer's angles (as instruments do) stays exact."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from lenscope import HookedTransformer, load_model
from lenscope.errors import CheckpointError
from lenscope.model import KVCache
from tests.model.hf_fixtures import VOCAB, WINDOW, make_checkpoint

# The shared checks, collected here again with this module's `pair` fixture.
from tests.model.test_hf_equivalence import (  # noqa: F401
    test_greedy_generation_matches,
    test_hidden_states_match_every_layer,
    test_logits_match,
    test_padded_batch_matches_single_prompts,
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Any:
    d = tmp_path_factory.mktemp("gemma3-linear")
    hf = make_checkpoint("gemma3-linear", d)
    return hf, load_model(d)


def _tokens(n: int = 40, seed: int = 5) -> torch.Tensor:
    return torch.randint(2, VOCAB, (2, n), generator=torch.Generator().manual_seed(seed))


def test_the_config_reads_the_scaling(pair: Any) -> None:
    _, ours = pair
    cfg = ours.cfg
    assert (cfg.rotary_base, cfg.rotary_base_local, cfg.rotary_scale) == (1e6, 1e4, 8.0)
    assert [cfg.rotary_scale_of(i) for i in range(3)] == [1.0, 8.0, 1.0]
    assert ours.blocks[1].attn.rotary.scale == 8.0 and ours.blocks[0].attn.rotary.scale == 1.0


def test_the_scaling_bites(pair: Any) -> None:
    hf, ours = pair
    t = _tokens()
    other = HookedTransformer(replace(ours.cfg, rotary_scale=1.0), ours.tokenizer)
    other.load_state_dict(ours.state_dict())
    with torch.no_grad():
        ref = hf(t).logits
        assert (ref - ours(t)).abs().max().item() <= 1e-4
        assert (ref - other.eval()(t)).abs().max().item() > 1e-3


def test_decoding_with_the_cache_crosses_the_window(pair: Any) -> None:
    hf, ours = pair
    t = _tokens(20, seed=2)
    cache = KVCache.empty(ours.cfg.n_layers)
    outs, at = [], 0
    with torch.no_grad():
        ref = hf(t).logits
        for n in (4, 1, WINDOW + 2, 1, 6):
            outs.append(ours(t[:, at : at + n], kv_cache=cache))
            at += n
    assert (ref - torch.cat(outs, 1)).abs().max().item() <= 1e-4


def test_replaying_blocks_with_the_first_layers_angles_is_exact(pair: Any) -> None:
    hf, ours = pair
    t = _tokens(20, seed=3)
    first = ours.blocks[0].attn.rotary
    rot = first.cos_sin(torch.arange(20).expand(2, 20), torch.float32)
    with torch.no_grad():
        x = ours.hook_embed.run(torch.nn.functional.embedding(t, ours.W_E))
        for block in ours.blocks:
            x = block(x, rot, None)
        got = ours.unembed_resid(ours.ln_final(x))
        ref = hf(t).logits
    assert (ref - got).abs().max().item() <= 1e-4


def test_a_bad_factor_is_one_clear_line(tmp_path: Path) -> None:
    make_checkpoint("gemma3-linear", tmp_path)
    f = tmp_path / "config.json"
    c = json.loads(f.read_text())
    c["rope_parameters"]["full_attention"]["factor"] = 0
    f.write_text(json.dumps(c))
    with pytest.raises(CheckpointError, match="factor > 0") as e:
        load_model(tmp_path)
    assert "\n" not in str(e.value)
