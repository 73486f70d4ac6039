"""Qwen3 and OLMo-2: Llama-style blocks with RMSNorms on queries and keys before rotary.

Qwen3 normalises each head's query and key (`attn.q_norm` over d_head); OLMo-2 normalises the
whole projected query and key (over n_heads * d_head and n_kv_heads * d_head) and has no norm
before its sublayers, only after them (`ln1_post`, `ln2_post`; `ln1`/`ln2` are identities).
"""

from __future__ import annotations

from typing import Any

from lenscope.errors import UnsupportedArchitectureError
from lenscope.model.config import ModelConfig
from lenscope.model.convert import (
    Getter,
    StateDict,
    attention_and_mlp,
    layer_types,
    llama_shape,
    need,
    rope_theta,
    window_of,
)


def _qwen3_window(c: dict[str, Any], n_layers: int, n_ctx: int) -> tuple[int, list[int] | None]:
    """Qwen3 slides only with `use_sliding_window`, in the layers `layer_types` names (older
    configs: from `max_window_layers` on), as `transformers` does."""
    if not c.get("use_sliding_window") or c.get("sliding_window") is None:
        return 0, None
    types = layer_types(c, n_layers)
    if types is None:
        first = int(c.get("max_window_layers", 28) or 0)  # 28: transformers' default
        layers = list(range(first, n_layers))
    else:
        layers = [i for i, t in enumerate(types) if t == "sliding_attention"]
    window = window_of(c)
    if window >= n_ctx or not layers:
        return 0, None
    return window, None if len(layers) == n_layers else layers


def qk_config(c: dict[str, Any], name: str) -> ModelConfig:
    arch = str(c.get("model_type"))
    n_layers, n_ctx = int(need(c, "num_hidden_layers")), int(need(c, "max_position_embeddings"))
    params = c.get("rope_parameters") or c.get("rope_scaling")
    theta = rope_theta(params, float(c.get("rope_theta", 10_000.0)))
    window, windowed = _qwen3_window(c, n_layers, n_ctx) if arch == "qwen3" else (0, None)
    act = str(c.get("hidden_act", "silu"))
    if act != "silu":
        raise UnsupportedArchitectureError(f"{arch} with hidden_act {act!r}")
    bias = bool(c.get("attention_bias", False))
    return ModelConfig(
        **llama_shape(c),
        act_fn="silu",
        gated_mlp=True,
        normalization="RMS",
        eps=float(c.get("rms_norm_eps", 1e-6)),
        positional="rotary",
        rotary_base=theta,
        attn_bias=bias,
        attn_out_bias=bias,
        mlp_bias=False,
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
        default_prepend_bos=arch != "qwen3",
        sliding_window=window,
        sliding_layers=windowed,
        qk_norm="head" if arch == "qwen3" else "full",
        pre_norm=arch == "qwen3",
        post_norm=arch == "olmo2",
        architecture=arch,
        name=name,
    )


def qk_weights(sd: StateDict, cfg: ModelConfig) -> StateDict:
    g = Getter({k.removeprefix("model."): v for k, v in sd.items()})
    out: StateDict = {"W_E": g("embed_tokens.weight", (cfg.d_vocab, cfg.d_model))}
    q_dim = cfg.d_head if cfg.qk_norm == "head" else cfg.n_heads * cfg.d_head
    k_dim = cfg.d_head if cfg.qk_norm == "head" else cfg.n_kv_heads * cfg.d_head
    for i in range(cfg.n_layers):
        p, o = f"layers.{i}.", f"blocks.{i}."
        out |= attention_and_mlp(g, p, o, cfg.attn_bias, False)
        out[o + "attn.q_norm.w"] = g(p + "self_attn.q_norm.weight", (q_dim,))
        out[o + "attn.k_norm.w"] = g(p + "self_attn.k_norm.weight", (k_dim,))
        if cfg.pre_norm:  # Qwen3
            out[o + "ln1.w"] = g(p + "input_layernorm.weight")
            out[o + "ln2.w"] = g(p + "post_attention_layernorm.weight")
        else:  # OLMo-2: its post_attention_layernorm normalises the attention's output
            out[o + "ln1_post.w"] = g(p + "post_attention_layernorm.weight")
            out[o + "ln2_post.w"] = g(p + "post_feedforward_layernorm.weight")
    out["ln_final.w"] = g("norm.weight")
    if not cfg.tie_embeddings:
        out["unembed"] = g("lm_head.weight", (cfg.d_vocab, cfg.d_model)).T
    return out
