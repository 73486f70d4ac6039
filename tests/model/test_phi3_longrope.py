"""Phi-3 with LongRoPE (its long-context checkpoints) from a checkpoint that `transformers` built
and saved: the shared equivalence checks on prompts shorter and longer than the original context
(short factors, then long ones), greedy generation that crosses it, and the factors bite."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from lenscope import HookedTransformer, load_model
from lenscope.errors import CheckpointError
from tests.model.hf_fixtures import LONGROPE_ORIGINAL, VOCAB, make_checkpoint

# The shared checks, collected here again with this module's `pair` fixture.
from tests.model.test_hf_equivalence import (  # noqa: F401
    test_greedy_generation_matches,
    test_hidden_states_match_every_layer,
    test_logits_match,
    test_padded_batch_matches_single_prompts,
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Any:
    d = tmp_path_factory.mktemp("phi3-longrope")
    hf = make_checkpoint("phi3-longrope", d)
    return hf, load_model(d)


def _tokens(n: int, seed: int = 5) -> torch.Tensor:
    return torch.randint(2, VOCAB, (2, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n", [LONGROPE_ORIGINAL - 4, LONGROPE_ORIGINAL, LONGROPE_ORIGINAL + 9])
def test_logits_match_on_both_sides_of_the_original_context(pair: Any, n: int) -> None:
    hf, ours = pair
    t = _tokens(n)
    with torch.no_grad():
        assert (hf(t).logits - ours(t)).abs().max().item() <= 1e-4


def test_the_factors_bite(pair: Any) -> None:
    hf, ours = pair
    plain = HookedTransformer(replace(ours.cfg, rotary_long_rope=None), ours.tokenizer)
    plain.load_state_dict(ours.state_dict())
    long = ours.cfg.rotary_long_rope
    assert long is not None
    short_only = replace(ours.cfg, rotary_long_rope=long | {"long_factor": long["short_factor"]})
    no_long = HookedTransformer(short_only, ours.tokenizer)
    no_long.load_state_dict(ours.state_dict())
    with torch.no_grad():
        for n, other in ((8, plain), (LONGROPE_ORIGINAL + 9, no_long)):
            t = _tokens(n, seed=n)
            ref = hf(t).logits
            assert (ref - ours(t)).abs().max().item() <= 1e-4
            assert (ref - other.eval()(t)).abs().max().item() > 1e-3


def test_generation_crosses_the_original_context(pair: Any) -> None:
    hf, ours = pair
    prompt = _tokens(LONGROPE_ORIGINAL - 3, seed=9)[:1]
    with torch.no_grad():
        ref = hf.generate(prompt, max_new_tokens=8, do_sample=False)
    got = ours.generate(prompt, max_new_tokens=8)
    assert isinstance(got, torch.Tensor)
    assert torch.equal(ref, got)


def test_bad_factors_are_one_clear_line(tmp_path: Path) -> None:
    make_checkpoint("phi3-longrope", tmp_path)
    f = tmp_path / "config.json"
    c = json.loads(f.read_text())
    c["rope_parameters"]["short_factor"] = [1.0, 2.0]
    f.write_text(json.dumps(c))
    with pytest.raises(CheckpointError, match="short_factor has 2 numbers") as e:
        load_model(tmp_path)
    assert "\n" not in str(e.value)


def test_a_saved_model_loads_back(pair: Any, tmp_path: Path) -> None:
    from lenscope import save_model

    _, ours = pair
    back = load_model(save_model(ours, tmp_path / "m"))
    assert back.cfg == ours.cfg
    t = _tokens(LONGROPE_ORIGINAL + 5, seed=4)
    with torch.no_grad():
        assert torch.equal(back(t), ours(t))
