"""Phi-3 (`Phi3ForCausalLM`, `model_type: phi3`): a Llama-style block (RMSNorm, rotary, gated SiLU
MLP, grouped-query attention, no biases) whose Q, K, V projections are stored as one `qkv_proj`
and whose gate and up projections are stored as one `gate_up_proj`.

`qkv_proj` rows are [q heads | k heads | v heads], lenscope's fused order, so its transpose is
`attn.w_qkv` as it stands; `gate_up_proj` rows are [gate | up] and split into `mlp.W_gate` and
`mlp.W_in`. Rotary takes `rope_theta` and `partial_rotary_factor`; a `sliding_window` applies to
every layer, as `transformers` applies it. LongRoPE (`rope_scaling` of type "longrope", or its
older names "su" and "yarn": the 128k-context checkpoints) is refused with a clear message.
"""

from __future__ import annotations

from typing import Any

from lenscope.errors import UnsupportedArchitectureError
from lenscope.model.config import ModelConfig
from lenscope.model.convert import Getter, StateDict, llama_shape, need
from lenscope.model.hf import _rope, _sliding_window
from lenscope.model.layers import activation_named

_LONGROPE = ("longrope", "su", "yarn")


def _refuse_longrope(c: dict[str, Any]) -> None:
    for where in ("rope_parameters", "rope_scaling"):
        p = c.get(where)
        kind = (p.get("rope_type") or p.get("type")) if isinstance(p, dict) else None
        if kind in _LONGROPE:
            raise UnsupportedArchitectureError(
                f"Phi-3 with {where} of type {kind!r} (LongRoPE, the long-context checkpoints) "
                "is not supported yet; Phi-3 checkpoints with plain rotary embeddings load"
            )


def phi3_config(c: dict[str, Any], name: str) -> ModelConfig:
    _refuse_longrope(c)
    theta, partial, _ = _rope(c)
    d, h = int(need(c, "hidden_size")), int(need(c, "num_attention_heads"))
    dh = int(c.get("head_dim") or d // h)
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
