"""Phi-3 and GPT-J checkpoints that `transformers` built with random weights and saved.

The checks of `test_hf_equivalence` run on these families too (logits, every layer's hidden state,
greedy generation with the KV cache, padded batches, the tokenizer, the oneDNN path); beside them,
chunked decoding with the cache, the weights against TransformerLens' own conversion of the same
checkpoint, every hook point against TransformerLens' forward pass, and the refusals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformer_lens import HookedTransformer as TLModel
from transformer_lens import HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions.gptj import convert_gptj_weights
from transformer_lens.pretrained.weight_conversions.phi3 import convert_phi3_weights

from lenscope import load_model
from lenscope.errors import CheckpointError, UnsupportedArchitectureError
from tests.model.hf_fixtures import VOCAB, WINDOW, make_checkpoint

# The shared checks, collected here again with this module's `pair` fixture.
from tests.model.test_hf_equivalence import (  # noqa: F401
    test_every_matmul_through_onednn_matches_transformers,
    test_greedy_generation_matches,
    test_hidden_states_match_every_layer,
    test_logits_match,
    test_padded_batch_matches_single_prompts,
    test_tokenizer_loaded,
)
from tests.model.test_kv import _chunked

FAMILIES = ["phi3", "phi3-partial", "phi3-sliding", "gptj", "gptj-tied"]


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    d = tmp_path_factory.mktemp(request.param)
    hf = make_checkpoint(request.param, d)
    return hf, load_model(d)


def test_chunked_decoding_equals_the_full_forward(pair: Any) -> None:
    _, ours = pair
    tokens = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        full = ours(tokens)
        got = _chunked(ours, tokens, [5, 1, 1, 3, 2])
    assert (full - got).abs().max().item() <= 1e-4


def test_attention_patterns_match_transformers(pair: Any) -> None:
    """The eager attention's probabilities, per layer and head: rotary style, partial rotary and
    the sliding window all show here."""
    hf, ours = pair
    tokens = torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(8))
    hf.config._attn_implementation = "eager"
    with torch.no_grad():
        ref = hf(tokens, output_attentions=True).attentions
        _, cache = ours.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    for layer in range(ours.cfg.n_layers):
        got = cache[f"blocks.{layer}.attn.hook_pattern"]
        assert (ref[layer] - got).abs().max().item() <= 1e-5, layer


def _tl_model(hf: Any, family: str) -> TLModel:
    c = hf.config
    if family.startswith("gptj"):
        dh = c.n_embd // c.n_head
        cfg = HookedTransformerConfig(
            n_layers=c.n_layer, d_model=c.n_embd, n_heads=c.n_head, d_head=dh,
            d_mlp=4 * c.n_embd, d_vocab=c.vocab_size, n_ctx=c.n_positions, act_fn="gelu_new",
            normalization_type="LN", eps=c.layer_norm_epsilon, positional_embedding_type="rotary",
            rotary_dim=c.rotary_dim, rotary_adjacent_pairs=True, parallel_attn_mlp=True,
            default_prepend_bos=False,
        )  # fmt: skip
        sd = convert_gptj_weights(hf, cfg)
    else:
        dh = c.hidden_size // c.num_attention_heads
        rope = c.rope_parameters
        cfg = HookedTransformerConfig(
            n_layers=c.num_hidden_layers, d_model=c.hidden_size, n_heads=c.num_attention_heads,
            d_head=dh, n_key_value_heads=c.num_key_value_heads, d_mlp=c.intermediate_size,
            d_vocab=c.vocab_size, n_ctx=c.max_position_embeddings, act_fn="silu",
            normalization_type="RMS", positional_embedding_type="rotary",
            rotary_dim=int(dh * rope["partial_rotary_factor"]), rotary_base=rope["rope_theta"],
            gated_mlp=True, final_rms=True, eps=c.rms_norm_eps, default_prepend_bos=False,
        )  # fmt: skip
        sd = convert_phi3_weights(hf, cfg)
    tl = TLModel(cfg)
    tl.load_state_dict(sd, strict=False)
    return tl.eval()


def test_weights_in_transformer_lens_layout(pair: Any, request: pytest.FixtureRequest) -> None:
    hf, ours = pair
    tl = _tl_model(hf, request.node.callspec.params["pair"])
    for name in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O", "W_in", "W_out"):
        assert torch.equal(getattr(ours, name), getattr(tl, name)), name
    assert torch.equal(ours.W_E, tl.W_E)
    assert torch.equal(ours.W_U, tl.W_U)
    if ours.cfg.gated_mlp:
        assert torch.equal(ours.W_gate, tl.W_gate)
    if ours.cfg.unembed_bias:
        assert ours.b_U is not None and torch.equal(ours.b_U, tl.b_U)
        assert torch.equal(ours.b_U, hf.lm_head.bias)
    else:
        assert ours.b_U is None
    for layer in range(ours.cfg.n_layers):
        ob, tb = ours.blocks[layer], tl.blocks[layer]
        for ln in ("ln1", "ln2"):
            assert torch.equal(getattr(ob, ln).w, getattr(tb, ln).w), (layer, ln)


def test_every_hook_point_matches_transformer_lens(
    pair: Any, request: pytest.FixtureRequest
) -> None:
    """Every hook point both libraries have, on the same checkpoint. TransformerLens has no
    sliding window, so the windowed Phi-3 is compared on a prompt as long as its window."""
    family = request.node.callspec.params["pair"]
    hf, ours = pair
    tl = _tl_model(hf, family)
    n = WINDOW if family.endswith("-sliding") else 12
    tokens = torch.randint(0, VOCAB, (2, n), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        logits, cache = ours.run_with_cache(tokens)
        tl_logits, tl_cache = tl.run_with_cache(tokens)
    assert (logits - tl_logits).abs().max().item() <= 1e-4
    common = sorted(set(cache.keys()) & set(tl_cache.keys()))
    # every hook lenscope fires on these blocks, except the residual between the branches,
    # which a parallel block does not have and TransformerLens leaves out
    assert set(cache.keys()) - set(common) <= {"hook_pos_embed"}
    per_layer = {k.split(".", 2)[-1] for k in common if k.startswith("blocks.0.")}
    expected = {
        "hook_resid_pre", "hook_resid_post", "hook_attn_out", "hook_mlp_out",
        "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_rot_q", "attn.hook_rot_k",
        "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z",
        "mlp.hook_pre", "mlp.hook_post", "ln1.hook_scale", "ln1.hook_normalized",
        "ln2.hook_scale", "ln2.hook_normalized",
    }  # fmt: skip
    assert expected <= per_layer, expected - per_layer
    for name in common:
        got, ref = cache[name], tl_cache[name]
        if name.endswith("hook_attn_scores"):  # -inf above the diagonal in both
            got, ref = got.clamp(min=-1e30), ref.clamp(min=-1e30)
        if ref.shape != got.shape and ref.shape[-1] == 1:  # [.., 1] scale vs ours
            ref = ref.expand_as(got)
        if name.endswith(("hook_k", "hook_v")) and got.shape != ref.shape:
            ref = ref[:, :, :: ours.cfg.n_heads // ours.cfg.n_kv_heads]  # TL repeats kv heads
        assert got.shape == ref.shape, (name, got.shape, ref.shape)
        assert (got - ref).abs().max().item() <= 1e-4, name
    if family.startswith("gptj"):  # one LayerNorm read by both branches
        for layer in range(ours.cfg.n_layers):
            a, b = cache[f"blocks.{layer}.ln1.hook_scale"], cache[f"blocks.{layer}.ln2.hook_scale"]
            assert torch.equal(a, b)


def _config_only(tmp_path: Path, family: str, **changes: Any) -> Path:
    make_checkpoint(family, tmp_path)
    c = json.loads((tmp_path / "config.json").read_text())
    c.update(changes)
    (tmp_path / "config.json").write_text(json.dumps(c))
    return tmp_path


@pytest.mark.parametrize(
    "rope",
    [
        {"rope_scaling": {"type": "longrope", "short_factor": [1.0] * 3, "long_factor": [2.0] * 3}},
        {"rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4}},
        {"rope_scaling": {"type": "su"}},
    ],
)
def test_phi3_longrope_without_its_parameters_is_refused_in_one_line(
    tmp_path: Path, rope: dict[str, Any]
) -> None:
    """(LongRoPE itself loads: tests/model/test_phi3_longrope.py.)"""
    d = _config_only(tmp_path, "phi3", **rope)
    with pytest.raises(CheckpointError) as e:
        load_model(d)
    assert "Phi-3" in str(e.value) and "LongRoPE" in str(e.value)
    assert "\n" not in str(e.value)


def test_an_unknown_activation_is_refused_in_one_line(tmp_path: Path) -> None:
    d = _config_only(tmp_path, "gptj", activation_function="swiglu_x")
    with pytest.raises(UnsupportedArchitectureError, match="gptj with activation 'swiglu_x'"):
        load_model(d)


def test_an_unsupported_architecture_names_the_new_families(tmp_path: Path) -> None:
    d = _config_only(tmp_path, "gptj", model_type="bloom")
    with pytest.raises(UnsupportedArchitectureError) as e:
        load_model(d)
    assert "'bloom'" in str(e.value) and "phi3" in str(e.value) and "gptj" in str(e.value)


def test_a_missing_fused_tensor_is_named(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    make_checkpoint("phi3", tmp_path)
    sd = load_file(str(tmp_path / "model.safetensors"))
    sd["model.layers.1.mlp.gate_up_proj.weight"] = sd["model.layers.1.mlp.gate_up_proj.weight"][1:]
    save_file(sd, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"gate_up_proj\.weight' has shape \(191, 64\)"):
        load_model(tmp_path)


def test_the_debuggers_direct_effects_add_up_to_the_logit(pair: Any) -> None:
    """The debugger on these blocks: every node's direct effect plus the bias terms (GPT-J's
    unembedding bias among them) is the logit itself, as a plain forward pass computes it."""
    from lenscope.attribution.api import Debugger
    from lenscope.attribution.questions import Logit
    from lenscope.nodes import NodeKind

    _, ours = pair
    ids = torch.randint(1, VOCAB, (9,), generator=torch.Generator().manual_seed(10)).tolist()
    r = Debugger(ours).why(ids, Logit(token=3), measure=0)
    with torch.no_grad():
        expected = float(ours(torch.tensor([ids]))[0, -1, 3])
    nodes = sum(s.direct_effect for s in r.table.sums if s.kind is not NodeKind.LATENT)
    assert r.value == pytest.approx(expected, abs=1e-4)
    assert float(nodes + sum(t.value for t in r.table.terms)) == pytest.approx(expected, abs=1e-4)
