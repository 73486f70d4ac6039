"""GPT-J (`GPTJForCausalLM`, `model_type: gptj`): LayerNorm, attention and MLP in parallel reading
one shared LayerNorm, rotary embeddings on the first `rotary_dim` dims of each head with GPT-J's
interleaved pairs (`rotate_every_two`: dims 2i and 2i+1 turn together), no attention biases, a
GELU MLP with biases and an unembedding with a bias.

lenscope's parallel block has a norm per branch (GPT-NeoX's layout), so the shared `ln_1` becomes
both `ln1` and `ln2` (TransformerLens does the same); `blocks.{l}.ln2.hook_scale` therefore equals
`blocks.{l}.ln1.hook_scale`. `lm_head.bias` becomes `b_U`.
"""

from __future__ import annotations

from typing import Any

import torch

from lenscope.model.config import ModelConfig
from lenscope.model.convert import Getter, StateDict, need
from lenscope.model.layers import activation_named


def gptj_config(c: dict[str, Any], name: str) -> ModelConfig:
    d = int(need(c, "n_embd", "hidden_size"))
    h = int(need(c, "n_head", "num_attention_heads"))
    # transformers rotates the whole head when rotary_dim is null
    rotary = c.get("rotary_dim")
    return ModelConfig(
        n_layers=int(need(c, "n_layer", "num_hidden_layers")),
        d_model=d,
        n_heads=h,
        d_vocab=int(need(c, "vocab_size")),
        n_ctx=int(need(c, "n_positions", "max_position_embeddings")),
        d_mlp=int(c.get("n_inner") or 4 * d),
        act_fn=activation_named(str(c.get("activation_function", "gelu_new")), "gptj"),
        eps=float(c.get("layer_norm_epsilon", 1e-5)),
        positional="rotary",
        rotary_dim=int(rotary) if rotary is not None else 0,
        rotary_base=10_000.0,  # fixed in GPT-J
        rotary_interleaved=True,
        parallel_attn_mlp=True,
        attn_bias=False,
        attn_out_bias=False,
        mlp_bias=True,
        unembed_bias=True,
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
        architecture="gptj",
        name=name,
    )


def gptj_weights(sd: StateDict, cfg: ModelConfig) -> StateDict:
    g = Getter({k.removeprefix("transformer."): v for k, v in sd.items()})
    d = cfg.d_model
    out: StateDict = {"W_E": g("wte.weight")}
    for i in range(cfg.n_layers):
        p, o = f"h.{i}.", f"blocks.{i}."
        ln_w, ln_b = g(p + "ln_1.weight", (d,)), g(p + "ln_1.bias", (d,))
        qkv = [g(p + f"attn.{x}_proj.weight", (d, d)) for x in "qkv"]
        out |= {
            o + "ln1.w": ln_w,
            o + "ln1.b": ln_b,
            o + "ln2.w": ln_w.clone(),  # the one LayerNorm both branches read
            o + "ln2.b": ln_b.clone(),
            o + "attn.w_qkv": torch.cat(qkv, 0).T,
            o + "attn.w_o": g(p + "attn.out_proj.weight", (d, d)).T,
            o + "mlp.W_in": g(p + "mlp.fc_in.weight").T,
            o + "mlp.b_in": g(p + "mlp.fc_in.bias"),
            o + "mlp.W_out": g(p + "mlp.fc_out.weight").T,
            o + "mlp.b_out": g(p + "mlp.fc_out.bias"),
        }
    out["ln_final.w"], out["ln_final.b"] = g("ln_f.weight"), g("ln_f.bias")
    if not cfg.tie_embeddings:
        out["unembed"] = g("lm_head.weight").T
    out["b_U"] = g("lm_head.bias", (cfg.d_vocab,))
    return out
