"""Mixtral (a sparse mixture of experts) from checkpoints that `transformers` built and saved.

The checks of `test_hf_equivalence` run here too (logits, every hidden state, greedy generation
with the KV cache, padded batches, the tokenizer, the oneDNN path). Beside them: the router's
logits and each expert's activations against transformers' own modules, an expert ablated
through its hook against the arithmetic of the clean run, the weights against TransformerLens'
conversion, and the fused expert layout of transformers 5 read as transformers reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformer_lens import HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions.mixtral import convert_mixtral_weights

from lenscope import ModelConfig, load_model
from lenscope.errors import InputError
from tests.model.hf_fixtures import VOCAB, make_checkpoint

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


@pytest.fixture(scope="module", params=["mixtral", "mixtral-sliding"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    d = tmp_path_factory.mktemp(request.param)
    hf = make_checkpoint(request.param, d)
    return hf, load_model(d)


def _tokens(n: int = 12, seed: int = 11) -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, n), generator=torch.Generator().manual_seed(seed))


def test_chunked_decoding_equals_the_full_forward(pair: Any) -> None:
    _, ours = pair
    tokens = _tokens(seed=7)
    with torch.no_grad():
        full = ours(tokens)
        got = _chunked(ours, tokens, [5, 1, 1, 3, 2])
    assert (full - got).abs().max().item() <= 1e-4


def test_router_and_every_expert_match_transformers(pair: Any) -> None:
    hf, ours = pair
    tokens = _tokens()
    seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def grab(layer: int) -> Any:
        def fn(mod: Any, args: Any, out: Any) -> None:
            seen[layer] = (args[0], out[0] if isinstance(out, tuple) else out)

        return fn

    handles = [lyr.mlp.register_forward_hook(grab(i)) for i, lyr in enumerate(hf.model.layers)]
    try:
        with torch.no_grad():
            ref = hf(tokens, output_router_logits=True)
            _, cache = ours.run_with_cache(tokens)
    finally:
        for h in handles:
            h.remove()
    cfg = ours.cfg
    for layer in range(cfg.n_layers):
        pre = f"blocks.{layer}.mlp."
        logits = cache[pre + "hook_router_logits"]
        assert logits.shape == (2, 12, cfg.num_experts)
        assert (ref.router_logits[layer] - logits.reshape(-1, cfg.num_experts)).abs().max() <= 1e-5
        # the weights: top-k of the softmax, renormalised, zero elsewhere (a brute-force loop)
        w = cache[pre + "hook_expert_weights"]
        probs = torch.softmax(logits, -1)
        for b in range(2):
            for p in range(12):
                chosen = sorted(range(cfg.num_experts), key=lambda e: -probs[b, p, e].item())
                chosen = chosen[: cfg.experts_per_token]
                total = sum(probs[b, p, e].item() for e in chosen)
                for e in range(cfg.num_experts):
                    want = probs[b, p, e].item() / total if e in chosen else 0.0
                    assert abs(w[b, p, e].item() - want) <= 1e-6
        x, out = seen[layer]
        assert (cache[f"blocks.{layer}.hook_mlp_out"] - out).abs().max().item() <= 1e-5
        experts = hf.model.layers[layer].mlp.experts
        m = cfg.d_mlp
        for e in range(cfg.num_experts):
            gate, up = experts.gate_up_proj[e, :m], experts.gate_up_proj[e, m:]
            post = F.silu(x @ gate.T) * (x @ up.T)  # at every position, routed there or not
            got = cache[f"{pre}experts.{e}.hook_post"]
            assert got.shape == (2, 12, m)
            assert (got - post).abs().max().item() <= 1e-5, (layer, e)


def test_an_expert_ablated_through_its_hook(pair: Any) -> None:
    """Zeroing expert 1's activations in layer 0 removes exactly its weighted output there."""
    _, ours = pair
    tokens = _tokens(seed=12)
    with torch.no_grad():
        _, clean = ours.run_with_cache(tokens)
    with (
        torch.no_grad(),
        ours.hooks(fwd=[("blocks.0.mlp.experts.1.hook_post", lambda x, h: torch.zeros_like(x))]),
    ):
        _, ablated = ours.run_with_cache(tokens)
    w = clean["blocks.0.mlp.hook_expert_weights"][..., 1:2]
    assert (w > 0).any() and (w == 0).any()  # routed at some positions, not at others
    expert = ours.blocks[0].mlp.experts[1]
    contribution = w * (clean["blocks.0.mlp.experts.1.hook_post"] @ expert.W_out)
    want = clean["blocks.0.hook_mlp_out"] - contribution
    assert (ablated["blocks.0.hook_mlp_out"] - want).abs().max().item() <= 1e-5


def test_the_hooked_experts_path_equals_the_sparse_one(pair: Any) -> None:
    _, ours = pair
    tokens = _tokens(seed=13)
    with torch.no_grad():
        sparse = ours(tokens)
        with ours.hooks(fwd=[("blocks.*.mlp.experts.*.hook_pre", lambda x, h: x)]):
            dense = ours(tokens)
    assert (sparse - dense).abs().max().item() <= 1e-5


def test_weights_in_transformer_lens_layout(pair: Any) -> None:
    hf, ours = pair
    c = hf.config
    cfg = HookedTransformerConfig(
        n_layers=c.num_hidden_layers, d_model=c.hidden_size, n_heads=c.num_attention_heads,
        d_head=c.hidden_size // c.num_attention_heads, n_key_value_heads=c.num_key_value_heads,
        d_mlp=c.intermediate_size, d_vocab=c.vocab_size, n_ctx=c.max_position_embeddings,
        act_fn="silu", normalization_type="RMS", positional_embedding_type="rotary",
        gated_mlp=True, num_experts=c.num_local_experts,
        experts_per_token=c.num_experts_per_tok,
    )  # fmt: skip
    sd = convert_mixtral_weights(hf, cfg)
    for layer in range(ours.cfg.n_layers):
        moe = ours.blocks[layer].mlp
        assert torch.equal(moe.W_gate, sd[f"blocks.{layer}.mlp.W_gate.weight"].T)
        for e in range(ours.cfg.num_experts):
            for name in ("W_gate", "W_in", "W_out"):
                ref = sd[f"blocks.{layer}.mlp.experts.{e}.{name}.weight"].T
                assert torch.equal(getattr(moe.experts[e], name), ref), (layer, e, name)
        assert torch.equal(ours.blocks[layer].attn.W_Q, sd[f"blocks.{layer}.attn.W_Q"])


def test_the_fused_expert_layout_loads(tmp_path: Path) -> None:
    """transformers 5's own parameter names (`mlp.experts.gate_up_proj`, ...), as transformers
    itself reads them."""
    import transformers as tf

    make_checkpoint("mixtral", tmp_path)
    sd = load_file(str(tmp_path / "model.safetensors"))
    n = json.loads((tmp_path / "config.json").read_text())["num_local_experts"]
    fused: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if ".block_sparse_moe.experts." in k:
            continue
        fused[k.replace(".block_sparse_moe.", ".mlp.")] = v
    layers = {k.split(".")[2] for k in sd if ".block_sparse_moe." in k}
    for i in layers:
        x = f"model.layers.{i}.block_sparse_moe.experts."
        w = {j: torch.stack([sd[f"{x}{e}.w{j}.weight"] for e in range(n)]) for j in (1, 2, 3)}
        fused[f"model.layers.{i}.mlp.experts.gate_up_proj"] = torch.cat([w[1], w[3]], 1)
        fused[f"model.layers.{i}.mlp.experts.down_proj"] = w[2]
    save_file(fused, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    ref_model = tf.MixtralForCausalLM.from_pretrained(tmp_path).eval()
    ours = load_model(tmp_path)
    tokens = _tokens(seed=14)
    with torch.no_grad():
        assert (ref_model(tokens).logits - ours(tokens)).abs().max().item() <= 1e-4


def test_config_round_trip_and_dense_configs_unchanged(pair: Any) -> None:
    _, ours = pair
    d = ours.cfg.to_dict()
    assert (d["num_experts"], d["experts_per_token"]) == (4, 2)
    assert ModelConfig.from_dict(d) == ours.cfg
    dense = ModelConfig(n_layers=1, d_model=8, n_heads=2, d_vocab=5, n_ctx=4).to_dict()
    assert "num_experts" not in dense and "experts_per_token" not in dense


def test_neuron_weights_of_a_mixture_are_refused_in_one_line(pair: Any) -> None:
    _, ours = pair
    with pytest.raises(InputError, match=r"mixture of experts.*mlp\.experts\.\{e\}") as e:
        _ = ours.W_in
    assert "\n" not in str(e.value)


def test_a_saved_mixture_loads_back(pair: Any, tmp_path: Path) -> None:
    from lenscope import save_model

    _, ours = pair
    back = load_model(save_model(ours, tmp_path / "m"))
    assert back.cfg == ours.cfg
    tokens = _tokens(seed=15)
    with torch.no_grad():
        assert torch.equal(back(tokens), ours(tokens))
