"""Gemma 1, 2 and 3 (text-only `Gemma3ForCausalLM`) in lenscope's layout.

What sets Gemma apart, and where it lands here:
- the embedding is multiplied by sqrt(d_model) cast to the weights' dtype: folded into `W_E`
  (as TransformerLens does), so the unembedding keeps the unscaled matrix and is stored untied;
- RMSNorm multiplies by `1 + w`: the stored norm weights are `1 + w`, computed in float32;
- GeGLU MLP (tanh-approximated GELU gate);
- Gemma 2/3: norms after each sublayer too (`ln1_post`, `ln2_post`), the attention scale
  1/sqrt(query_pre_attn_scalar), sliding-window layers per `layer_types`;
- Gemma 2: attention scores and final logits soft-capped (Gemma 3's config may carry
  `attn_logit_softcapping`, but `transformers` does not apply it there, so neither do we);
- Gemma 3: per-head q/k RMSNorms, a separate rotary base for the sliding-window layers, and
  linear rope scaling on the global layers where the config asks (Gemma 3 4B and larger).
"""

from __future__ import annotations

from typing import Any, get_args

import torch
from torch import Tensor

from lenscope.errors import CheckpointError, UnsupportedArchitectureError
from lenscope.model.config import Activation, ModelConfig
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

GEMMAS = ("gemma", "gemma2", "gemma3_text")


def _activation(c: dict[str, Any], arch: str) -> Activation:
    act = str(c.get("hidden_activation") or c.get("hidden_act") or "gelu_pytorch_tanh")
    if arch == "gemma" and act == "gelu":
        act = "gelu_pytorch_tanh"  # transformers' reading of the first releases' configs
    known: tuple[Activation, ...] = get_args(Activation)
    for a in known:
        if act == a:
            return a
    raise UnsupportedArchitectureError(f"activation {act!r} is not supported")


def _sliding(c: dict[str, Any], arch: str, n_layers: int) -> tuple[int, list[int] | None]:
    """(window, sliding layers) of Gemma 2/3: `layer_types`, else transformers' defaults
    (Gemma 2 slides on even layers, Gemma 3 on all but every `sliding_window_pattern`-th)."""
    if arch == "gemma" or c.get("sliding_window") is None:
        return 0, None
    types = layer_types(c, n_layers)
    if types is None:
        every = 2 if arch == "gemma2" else int(c.get("sliding_window_pattern") or 6)
        sliding = [i for i in range(n_layers) if (i + 1) % every]
    else:
        sliding = [i for i, t in enumerate(types) if t == "sliding_attention"]
    if not sliding:
        return 0, None
    return window_of(c), None if len(sliding) == n_layers else sliding


def _bases(c: dict[str, Any], arch: str) -> tuple[float, float, float]:
    """(global base, local base, the global layers' linear rope scaling); local 0 when the
    sliding layers share the global base. Gemma 3's global layers may scale linearly."""
    params = c.get("rope_parameters") or {}
    scaling = c.get("rope_scaling")
    if arch != "gemma3_text":
        theta = rope_theta(params or scaling, float(c.get("rope_theta", 10_000.0)))
        return theta, 0.0, 1.0
    if "full_attention" in params or "sliding_attention" in params:
        full, scale = _linear(params.get("full_attention"), 1_000_000.0)
        local = rope_theta(params.get("sliding_attention"), 10_000.0, " on local layers")
        return full, local, scale
    full, scale = _linear(scaling, float(c.get("rope_theta", 1_000_000.0)))
    return full, float(c.get("rope_local_base_freq", 10_000.0)), scale


def _linear(params: dict[str, Any] | None, default: float) -> tuple[float, float]:
    """(base, linear scaling factor) of Gemma 3's global layers: plain or "linear" rope."""
    params = params or {}
    if params.get("rope_type", params.get("type")) != "linear":
        return rope_theta(params, default, " on global layers"), 1.0
    factor = params.get("factor")
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor > 0:
        raise CheckpointError(f"config.json linear rope scaling needs a factor > 0, got {factor!r}")
    return float(params.get("rope_theta", default)), float(factor)


def gemma_config(c: dict[str, Any], name: str) -> ModelConfig:
    arch = str(c.get("model_type"))
    if c.get("use_bidirectional_attention"):
        raise UnsupportedArchitectureError(f"{arch} with use_bidirectional_attention")
    d, h = int(need(c, "hidden_size")), int(need(c, "num_attention_heads"))
    dh = int(c.get("head_dim") or d // h)
    n_layers = int(need(c, "num_hidden_layers"))
    window, windowed = _sliding(c, arch, n_layers)
    base, local, scale = _bases(c, arch)
    later = arch != "gemma"
    scalar = float(c.get("query_pre_attn_scalar") or dh) if later else float(dh)
    attn_cap = float(c.get("attn_logit_softcapping") or 0.0) if arch == "gemma2" else 0.0
    return ModelConfig(
        **llama_shape(c),
        act_fn=_activation(c, arch),
        gated_mlp=True,
        normalization="RMS",
        eps=float(c.get("rms_norm_eps", 1e-6)),
        positional="rotary",
        rotary_base=base,
        rotary_base_local=local if window else 0.0,
        rotary_scale=scale,
        attn_bias=bool(c.get("attention_bias", False)),
        attn_out_bias=bool(c.get("attention_bias", False)),
        mlp_bias=False,
        tie_embeddings=False,  # W_E carries the sqrt(d_model) scale, W_U does not
        attn_scale=scalar**0.5,
        sliding_window=window,
        sliding_layers=windowed,
        attn_scores_soft_cap=attn_cap,
        output_logits_soft_cap=float(c.get("final_logit_softcapping") or 0.0) if later else 0.0,
        qk_norm="head" if arch == "gemma3_text" else "none",
        post_norm=later,
        architecture=arch,
        name=name,
    )


def _plus_one(t: Tensor) -> Tensor:
    """A Gemma RMSNorm weight as the factor it multiplies by: 1 + w, in float32 as HF does."""
    return t.float() + 1.0


def gemma_weights(sd: StateDict, cfg: ModelConfig) -> StateDict:
    g = Getter({k.removeprefix("model."): v for k, v in sd.items()})
    emb = g("embed_tokens.weight", (cfg.d_vocab, cfg.d_model))
    scale = torch.tensor(cfg.d_model**0.5, dtype=torch.float32).to(emb.dtype)
    out: StateDict = {"W_E": emb * scale}
    for i in range(cfg.n_layers):
        p, o = f"layers.{i}.", f"blocks.{i}."
        out |= attention_and_mlp(g, p, o, cfg.attn_bias, False)
        out[o + "ln1.w"] = _plus_one(g(p + "input_layernorm.weight"))
        if cfg.post_norm:
            out[o + "ln1_post.w"] = _plus_one(g(p + "post_attention_layernorm.weight"))
            out[o + "ln2.w"] = _plus_one(g(p + "pre_feedforward_layernorm.weight"))
            out[o + "ln2_post.w"] = _plus_one(g(p + "post_feedforward_layernorm.weight"))
        else:
            out[o + "ln2.w"] = _plus_one(g(p + "post_attention_layernorm.weight"))
        if cfg.qk_norm == "head":
            out[o + "attn.q_norm.w"] = _plus_one(g(p + "self_attn.q_norm.weight", (cfg.d_head,)))
            out[o + "attn.k_norm.w"] = _plus_one(g(p + "self_attn.k_norm.weight", (cfg.d_head,)))
    out["ln_final.w"] = _plus_one(g("norm.weight"))
    # Tied checkpoints (every released Gemma) save no lm_head: the unscaled embedding is W_U.
    tied = "lm_head.weight" not in sd
    out["unembed"] = (emb if tied else Getter(sd)("lm_head.weight", emb.shape)).T
    return out
