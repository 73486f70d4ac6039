"""`circuit_weights` against TransformerLens on the same checkpoint: a GPT-2 (LayerNorm) and a
Llama (RMSNorm) saved by `transformers`, loaded by lenscope from disk and by TransformerLens
through its own weight conversion with `fold_ln` + `center_writing_weights` (no unembedding
centring, no value-bias folding). The folded weights and the Q/K/V composition scores agree to
float32 rounding (TransformerLens computes in float32, lenscope in float64)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from lenscope import HookedTransformer, load_model
from lenscope.circuits.composition import Mode, composition_scores
from lenscope.circuits.folding import CircuitWeights, circuit_weights
from lenscope.model.norms import fold_norm
from tests.model.hf_fixtures import VOCAB, make_checkpoint

MODES: tuple[Mode, ...] = ("Q", "K", "V")
Pair = tuple[HookedTransformer, CircuitWeights, Any]


def tl_config(family: str, hf: torch.nn.Module) -> Any:
    from transformer_lens import HookedTransformerConfig

    common: dict[str, Any] = dict(
        n_layers=3, d_model=64, n_heads=4, d_head=16, d_vocab=VOCAB, n_ctx=64,
        default_prepend_bos=False,
    )  # fmt: skip
    if family == "gpt2":
        return HookedTransformerConfig(
            **common, d_mlp=256, act_fn="gelu_new", normalization_type="LN"
        )
    return HookedTransformerConfig(
        **common, d_mlp=96, act_fn="silu", normalization_type="RMS", gated_mlp=True,
        final_rms=True, eps=hf.config.rms_norm_eps, positional_embedding_type="rotary",
        rotary_dim=16, n_key_value_heads=2, original_architecture="LlamaForCausalLM",
    )  # fmt: skip


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Pair:
    """The same checkpoint in lenscope (folded by circuit_weights) and in TransformerLens: GPT-2
    (LayerNorm) and Llama (RMSNorm, grouped-query attention)."""
    from transformer_lens import HookedTransformer as TLModel
    from transformer_lens.pretrained.weight_conversions.gpt2 import convert_gpt2_weights
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

    family: str = request.param
    d: Path = tmp_path_factory.mktemp(f"{family}-tl")
    hf = make_checkpoint(family, d)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # norms far from the identity, so that folding them matters
        for name, p in hf.named_parameters():
            if "ln_" in name or "norm" in name:
                noise = torch.randn(p.shape, generator=g)
                p.copy_(p * (1 + 0.5 * noise) if name.endswith("weight") else p + 0.3 * noise)
    hf.save_pretrained(d, safe_serialization=True)
    model = load_model(d)
    assert model.cfg.normalization == ("LN" if family == "gpt2" else "RMS")
    ours = circuit_weights(model, freeze_scales=False)
    cfg = tl_config(family, hf)
    tl = TLModel(cfg)
    convert = convert_gpt2_weights if family == "gpt2" else convert_llama_weights
    tl.load_and_process_state_dict(
        convert(hf, cfg),
        fold_ln=True,
        center_writing_weights=family == "gpt2",  # TransformerLens centres for LayerNorm only
        center_unembed=False,
        fold_value_biases=False,
    )
    return model, ours, tl.eval()


def close(ours: Tensor, theirs: Tensor) -> None:
    """Equal to float32 rounding: 1e-5 relative to the tensor's largest entry."""
    theirs = theirs.detach().double()
    atol = 1e-5 * float(theirs.abs().max())
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=atol)


def test_folded_weights_match_transformer_lens(pair: Pair) -> None:
    model, ours, tl = pair
    names = ["W_E", "W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V", "W_O", "b_O", "W_U"]
    for name in names + (["W_pos"] if model.W_pos is not None else []):
        theirs = getattr(tl, name)
        assert getattr(ours, name).shape == theirs.shape, name
        close(getattr(ours, name), theirs)
    close(ours.b_U, tl.b_U)
    # LayerNorm: the readers are centred along d_model, as fold_ln leaves them; RMSNorm: not
    for W in (ours.W_Q, ours.W_K, ours.W_V, ours.W_U):
        centred = float(W.mean(-2).abs().max()) < 1e-12 * float(W.abs().max())
        assert centred == (model.cfg.normalization == "LN")


def composition(cw: CircuitWeights, mode: Mode) -> Tensor:
    scores = composition_scores(cw, mode).scores
    return scores[~torch.isnan(scores)]


def tl_composition(tl: Any, mode: Mode) -> Tensor:
    """TransformerLens' scores for the pairs lenscope scores (earlier layer into later)."""
    theirs = tl.all_composition_scores(mode).detach().double()
    L = theirs.shape[0]
    later = torch.arange(L)[:, None, None, None] < torch.arange(L)[None, None, :, None]
    return theirs[later.expand_as(theirs)]


@pytest.mark.parametrize("mode", MODES)
def test_composition_scores_match_transformer_lens(pair: Pair, mode: Mode) -> None:
    _, ours, tl = pair
    theirs = tl_composition(tl, mode)
    assert theirs.numel() == 3 * 16  # layer pairs (0,1), (0,2), (1,2) x 4 x 4 heads
    torch.testing.assert_close(composition(ours, mode), theirs, rtol=1e-5, atol=0.0)


def test_uncentred_readers_match_only_without_layernorm(pair: Pair) -> None:
    """Folding W_Q/W_K/W_V without centring them along d_model (what circuit_weights did before
    for LayerNorm) moves LayerNorm's scores by far more than the tolerance above, so the
    comparison can fail; for RMSNorm it is what TransformerLens does."""
    model, ours, tl = pair
    folded = {}
    for name in ("W_Q", "W_K", "W_V"):
        raw = getattr(model, name).detach().double()
        b = torch.zeros(raw.shape[:-2] + raw.shape[-1:], dtype=torch.float64)
        rows = [fold_norm(blk.ln1, raw[i], b[i], False)[0] for i, blk in enumerate(model._blocks())]
        folded[name] = torch.stack(rows)
    uncentred = replace(ours, **folded)
    rel = [
        (composition(uncentred, m) - tl_composition(tl, m)).abs() / tl_composition(tl, m)
        for m in MODES
    ]
    worst = max(float(r.max()) for r in rel)
    if model.cfg.normalization == "LN":
        assert worst > 1e-3
    else:
        assert worst < 1e-5
