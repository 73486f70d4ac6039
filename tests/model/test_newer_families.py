"""Gemma 1/2/3, Qwen3 and OLMo-2 beyond the shared equivalence tests: each feature that sets
them apart bites (dropping it breaks the match with `transformers`), their hooks are where
TransformerLens puts them, decoding with the cache crosses the sliding window, and the
instruments (run_with_cache, the logit lens, the debugger) run on them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from lenscope import HookedTransformer, ModelConfig, load_model, save_model
from lenscope.attribution.api import Debugger
from lenscope.attribution.questions import LogitDiff
from lenscope.errors import CheckpointError, UnsupportedArchitectureError
from lenscope.lens.core import lens_logits
from lenscope.model import KVCache
from lenscope.model.norms import normalize
from tests.model.hf_fixtures import (
    ATTN_CAP,
    LOGIT_CAP,
    Q_PRE_ATTN_SCALAR,
    VOCAB,
    WINDOW,
    make_checkpoint,
)

Pair = tuple[Any, HookedTransformer]
_PAIRS: dict[str, Pair] = {}


def pair(family: str, tmp: pytest.TempPathFactory) -> Pair:
    if family not in _PAIRS:
        d = tmp.mktemp(family)
        _PAIRS[family] = (make_checkpoint(family, d), load_model(d))
    return _PAIRS[family]


def _tokens(n: int, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randint(2, VOCAB, (batch, n), generator=torch.Generator().manual_seed(seed))


def _gap(hf: Any, model: HookedTransformer, t: torch.Tensor) -> float:
    with torch.no_grad():
        return float((hf(t).logits - model(t)).abs().max())


def _rebuilt(model: HookedTransformer, **changes: Any) -> HookedTransformer:
    """The same weights under a changed config."""
    other = HookedTransformer(replace(model.cfg, **changes), model.tokenizer)
    other.load_state_dict(model.state_dict())
    return other.eval()


def test_configs_read_every_feature(tmp_path_factory: pytest.TempPathFactory) -> None:
    g1, g2, g3 = (pair(f, tmp_path_factory)[1].cfg for f in ("gemma", "gemma2", "gemma3"))
    q3, ol = pair("qwen3", tmp_path_factory)[1].cfg, pair("olmo2", tmp_path_factory)[1].cfg
    assert (g1.attn_scale, g1.post_norm, g1.output_logits_soft_cap) == (4.0, False, 0.0)
    assert g2.attn_scale == g3.attn_scale == Q_PRE_ATTN_SCALAR**0.5
    assert (g2.attn_scores_soft_cap, g2.output_logits_soft_cap) == (ATTN_CAP, LOGIT_CAP)
    assert (g3.attn_scores_soft_cap, g3.output_logits_soft_cap) == (0.0, LOGIT_CAP)
    assert g2.sliding_layers == g3.sliding_layers == [0, 2] and g2.sliding_window == WINDOW
    assert (g3.rotary_base, g3.rotary_base_local) == (1_000_000.0, 10_000.0)
    assert [g3.rotary_base_of(i) for i in range(3)] == [10_000.0, 1_000_000.0, 10_000.0]
    assert (g3.qk_norm, q3.qk_norm, ol.qk_norm) == ("head", "head", "full")
    assert (ol.pre_norm, ol.post_norm, q3.pre_norm, q3.post_norm) == (False, True, True, False)


@pytest.mark.parametrize(
    ("family", "change"),
    [
        ("gemma2", {"attn_scores_soft_cap": 0.0}),
        ("gemma2", {"output_logits_soft_cap": 0.0}),
        ("gemma3", {"output_logits_soft_cap": 0.0}),
        ("gemma2", {"attn_scale": 4.0}),  # sqrt(d_head), not sqrt(query_pre_attn_scalar)
        ("gemma3", {"rotary_base_local": 0.0}),  # every layer on the global base
        ("gemma2", {"sliding_window": 0}),
        ("gemma2", {"post_norm": False}),
        ("qwen3", {"qk_norm": "none"}),
        ("olmo2", {"qk_norm": "none"}),
    ],
)
def test_each_feature_bites(
    family: str, change: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    hf, ours = pair(family, tmp_path_factory)
    t = _tokens(20)
    assert _gap(hf, ours, t) <= 1e-4
    if change.get("post_norm") is False:  # the post-norm weights have no place: drop them
        other = HookedTransformer(replace(ours.cfg, **change), ours.tokenizer)
        own = other.state_dict()
        other.load_state_dict({k: v for k, v in ours.state_dict().items() if k in own})
        other.eval()
    elif change.get("qk_norm") == "none":
        other = HookedTransformer(replace(ours.cfg, **change), ours.tokenizer)
        other.load_state_dict({k: v for k, v in ours.state_dict().items() if "_norm." not in k})
        other.eval()
    else:
        other = _rebuilt(ours, **change)
    assert _gap(hf, other, t) > 1e-3


@pytest.mark.parametrize("family", ["gemma2", "gemma3", "qwen3-sliding", "olmo2"])
def test_hooked_forward_matches_and_hooks_sit_where_tl_puts_them(
    family: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    hf, ours = pair(family, tmp_path_factory)
    t = _tokens(15)
    with torch.no_grad():
        ref = hf(t).logits
        logits, cache = ours.run_with_cache(t)  # every hook active: the explicit-softmax path
    assert (ref - logits).abs().max().item() <= 1e-4
    for layer in range(ours.cfg.n_layers):
        pre, mid = cache[f"blocks.{layer}.hook_resid_pre"], cache[f"blocks.{layer}.hook_resid_mid"]
        torch.testing.assert_close(pre + cache[f"blocks.{layer}.hook_attn_out"], mid)
        if ours.cfg.post_norm:  # the post-norm's scale is the RMS of the raw attention output
            block = ours.blocks[layer]
            raw = torch.einsum(
                "bphd,hdm->bpm", cache[f"blocks.{layer}.attn.hook_z"], block.attn.W_O
            )
            rms = (raw.pow(2).mean(-1, keepdim=True) + ours.cfg.eps).sqrt()
            torch.testing.assert_close(cache[f"blocks.{layer}.ln1_post.hook_scale"], rms)
            torch.testing.assert_close(
                normalize(block.ln1_post, raw), cache[f"blocks.{layer}.hook_attn_out"]
            )
            assert f"blocks.{layer}.ln2_post.hook_scale" in cache
        if ours.cfg.qk_norm != "none":
            q, scale = (
                cache[f"blocks.{layer}.attn.hook_q"],
                cache[f"blocks.{layer}.attn.q_norm.hook_scale"],
            )
            flat = q if ours.cfg.qk_norm == "head" else q.flatten(-2)
            torch.testing.assert_close(
                scale, (flat.pow(2).mean(-1, keepdim=True) + ours.cfg.eps).sqrt()
            )
            assert f"blocks.{layer}.attn.k_norm.hook_scale" in cache
        if ours.cfg.attn_scores_soft_cap:
            s = cache[f"blocks.{layer}.attn.hook_attn_scores"]
            assert s[s.isfinite()].abs().max().item() <= ATTN_CAP


@pytest.mark.parametrize("family", ["gemma2", "gemma3", "qwen3-sliding"])
def test_decoding_with_the_cache_crosses_the_window(
    family: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    hf, ours = pair(family, tmp_path_factory)
    t = _tokens(20, seed=2)
    cache = KVCache.empty(ours.cfg.n_layers)
    outs, at = [], 0
    with torch.no_grad():
        ref = hf(t).logits
        for n in (4, 1, WINDOW + 2, 1, 6):
            outs.append(ours(t[:, at : at + n], kv_cache=cache))
            at += n
    assert (ref - torch.cat(outs, 1)).abs().max().item() <= 1e-4


def test_save_and_reload_keeps_every_feature(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    hf, ours = pair("gemma3", tmp_path_factory)
    back = load_model(save_model(ours, tmp_path / "g3"))
    assert back.cfg == ours.cfg
    assert _gap(hf, back, _tokens(20)) <= 1e-4
    old = ModelConfig(n_layers=1, d_model=8, n_heads=2, d_vocab=5, n_ctx=4).to_dict()
    assert not {"qk_norm", "post_norm", "pre_norm", "rotary_base_local"} & set(old)


def test_instruments_run_on_gemma2(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The logit lens's last boundary is the soft-capped logits; the debugger's value is the
    model's own logit difference."""
    _, ours = pair("gemma2", tmp_path_factory)
    ids = list(range(3, 15))
    with torch.no_grad():
        ref = ours(torch.tensor([ids]))
    bounds, lens = lens_logits(ours, torch.tensor([ids]))
    assert len(bounds) == ours.cfg.n_layers + 1
    assert (lens[-1] - ref).abs().max().item() <= 1e-6
    assert lens.abs().max().item() <= LOGIT_CAP
    r = Debugger(ours).why(ids, LogitDiff(target=[5], distractor=[7]))
    assert r.value == pytest.approx(float(ref[0, -1, 5] - ref[0, -1, 7]), abs=1e-5)
    assert r.table.rows


def _hf_dir(tmp_path: Path, family: str, **edits: Any) -> Path:
    make_checkpoint(family, tmp_path)
    f = tmp_path / "config.json"
    c = json.loads(f.read_text()) | edits
    f.write_text(json.dumps(c))
    return tmp_path


def test_bad_configs_fail_with_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedArchitectureError, match="rope scaling 'yarn'"):
        load_model(
            _hf_dir(
                tmp_path / "a",
                "gemma3",
                rope_parameters={
                    "full_attention": {"rope_type": "yarn", "factor": 8.0, "rope_theta": 1e6},
                    "sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
                },
            )
        )
    with pytest.raises(UnsupportedArchitectureError, match="bidirectional"):
        load_model(_hf_dir(tmp_path / "b", "gemma3", use_bidirectional_attention=True))
    with pytest.raises(CheckpointError, match="layer_types must list 3"):
        load_model(_hf_dir(tmp_path / "c", "gemma2", layer_types=["full_attention"]))
    with pytest.raises(
        UnsupportedArchitectureError,
        match=r"model_type 'gemma3' is not supported.*converts .*gemma3_text, .*olmo2, .*qwen3",
    ):
        load_model(_hf_dir(tmp_path / "d", "gemma", model_type="gemma3"))


def test_replaying_blocks_with_the_first_layers_angles_is_exact(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Instruments replay blocks with `blocks[0].attn.rotary`'s angles; Gemma 3's global layers
    recompute theirs from the positions those angles carry."""
    hf, ours = pair("gemma3", tmp_path_factory)
    t = _tokens(20, seed=3)
    first = ours.blocks[0].attn.rotary
    assert first is not None and first.base != ours.blocks[1].attn.rotary.base
    rot = first.cos_sin(torch.arange(20).expand(2, 20), torch.float32)
    with torch.no_grad():
        x = ours.hook_embed.run(torch.nn.functional.embedding(t, ours.W_E))
        for block in ours.blocks:
            x = block(x, rot, None)
        got = ours.unembed_resid(ours.ln_final(x))
        ref = hf(t).logits
    assert (ref - got).abs().max().item() <= 1e-4
