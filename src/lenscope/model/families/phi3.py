"""Phi-3 (`Phi3ForCausalLM`, `model_type: phi3`): a Llama-style block (RMSNorm, rotary, gated SiLU
MLP, grouped-query attention, no biases) whose Q, K, V projections are stored as one `qkv_proj`
and whose gate and up projections are stored as one `gate_up_proj`.

`qkv_proj` rows are [q heads | k heads | v heads], lenscope's fused order, so its transpose is
`attn.w_qkv` as it stands; `gate_up_proj` rows are [gate | up] and split into `mlp.W_gate` and
`mlp.W_in`. Rotary takes `rope_theta` and `partial_rotary_factor`; a `sliding_window` applies to
every layer, as `transformers` applies it. LongRoPE (`rope_scaling` of type "longrope", or its
older names "su" and "yarn": the 128k-context checkpoints) is `cfg.rotary_long_rope`: per
frequency short factors, long ones once a forward's last position passes the original context,
and a factor on cos and sin, as `transformers` computes them.
"""

from __future__ import annotations

import math
from typing import Any

from lenscope.errors import CheckpointError
from lenscope.model.config import ModelConfig
from lenscope.model.convert import Getter, StateDict, llama_shape, need
from lenscope.model.hf import _rope, _sliding_window
from lenscope.model.layers import activation_named

_LONGROPE = ("longrope", "su", "yarn")


def _long_rope(c: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the config with its LongRoPE entry made plain, LongRoPE's parameters or None): short
    and long factors (one per rotary frequency), the original context and the factor on cos and
    sin (given, or transformers' sqrt(1 + ln(factor) / ln(original)))."""
    for where in ("rope_parameters", "rope_scaling"):
        p = c.get(where)
        kind = (p.get("rope_type") or p.get("type")) if isinstance(p, dict) else None
        if kind not in _LONGROPE:
            continue
        assert isinstance(p, dict)
        short, long = p.get("short_factor"), p.get("long_factor")
        original = p.get("original_max_position_embeddings") or c.get(
            "original_max_position_embeddings"
        )
        for what, f in (("short_factor", short), ("long_factor", long)):
            if not isinstance(f, list) or not all(isinstance(x, int | float) for x in f):
                raise CheckpointError(
                    f"Phi-3's LongRoPE ({where} {kind!r}) needs a {what}: one number per rotary "
                    "frequency"
                )
        assert isinstance(short, list) and isinstance(long, list)
        if not isinstance(original, int) or original < 1:
            raise CheckpointError(
                f"Phi-3's LongRoPE ({where} {kind!r}) needs original_max_position_embeddings"
            )
        factor = p.get("factor") or int(need(c, "max_position_embeddings")) / original
        gain = p.get("attention_factor")
        if gain is None:
            gain = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
        plain = {k: v for k, v in p.items() if k in ("rope_theta", "partial_rotary_factor")}
        params: dict[str, Any] = {
            "short_factor": [float(x) for x in short],
            "long_factor": [float(x) for x in long],
            "original_max": original,
            "attention_factor": float(gain),
        }
        return {**c, where: plain}, params
    return c, None


def phi3_config(c: dict[str, Any], name: str) -> ModelConfig:
    c, long_rope = _long_rope(c)
    theta, partial, _ = _rope(c)
    d, h = int(need(c, "hidden_size")), int(need(c, "num_attention_heads"))
    dh = int(c.get("head_dim") or d // h)
    if long_rope is not None:
        for what in ("short_factor", "long_factor"):
            if len(long_rope[what]) != int(dh * partial) // 2:
                raise CheckpointError(
                    f"Phi-3's LongRoPE {what} has {len(long_rope[what])} numbers; its rotary "
                    f"has {int(dh * partial) // 2} frequencies"
                )
    n_layers, n_ctx = int(need(c, "num_hidden_layers")), int(need(c, "max_position_embeddings"))
    # Phi-3 windows every layer when `sliding_window` is set: Mistral's rule.
    window, windowed = _sliding_window(c, "mistral", n_layers, n_ctx)
    return ModelConfig(
        **llama_shape(c),
        act_fn=activation_named(str(c.get("hidden_act", "silu")), "phi3"),
        gated_mlp=True,
        normalization="RMS",
        eps=float(c.get("rms_norm_eps", 1e-5)),
        positional="rotary",
        rotary_dim=int(dh * partial),
        rotary_base=theta,
        attn_bias=False,
        attn_out_bias=False,
        mlp_bias=False,
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
        sliding_window=window,
        sliding_layers=windowed,
        rotary_long_rope=long_rope,
        architecture="phi3",
        name=name,
    )


def phi3_weights(sd: StateDict, cfg: ModelConfig) -> StateDict:
    g = Getter({k.removeprefix("model."): v for k, v in sd.items()})
    d, m = cfg.d_model, cfg.d_mlp
    n_qkv = (cfg.n_heads + 2 * cfg.n_kv_heads) * cfg.d_head
    out: StateDict = {"W_E": g("embed_tokens.weight")}
    for i in range(cfg.n_layers):
        p, o = f"layers.{i}.", f"blocks.{i}."
        gate_up = g(p + "mlp.gate_up_proj.weight", (2 * m, d))
        out |= {
            o + "ln1.w": g(p + "input_layernorm.weight"),
            o + "ln2.w": g(p + "post_attention_layernorm.weight"),
            o + "attn.w_qkv": g(p + "self_attn.qkv_proj.weight", (n_qkv, d)).T,
            o + "attn.w_o": g(p + "self_attn.o_proj.weight").T,
            o + "mlp.W_gate": gate_up[:m].T,
            o + "mlp.W_in": gate_up[m:].T,
            o + "mlp.W_out": g(p + "mlp.down_proj.weight").T,
        }
    out["ln_final.w"] = g("norm.weight")
    if not cfg.tie_embeddings:
        out["unembed"] = g("lm_head.weight").T
    return out
