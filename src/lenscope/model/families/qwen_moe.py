"""Qwen3-MoE (`Qwen3MoeForCausalLM`, `model_type: qwen3_moe`): Qwen3's attention (per-head q/k
RMSNorms, grouped-query, rotary, sliding window when set) with each MLP a sparse mixture of
experts (`lenscope.model.moe`) of width `moe_intermediate_size`. Qwen2-MoE
(`Qwen2MoeForCausalLM`, `model_type: qwen2_moe`): Qwen2's attention (q/k/v biases) with the same
mixture plus a shared expert of width `shared_expert_intermediate_size` at every position,
weighed by `sigmoid(shared_expert_gate(x))`: the mixture's last expert (`cfg.d_mlp_shared`).

The router's top-k weights are renormalised to sum to 1 only with `norm_topk_prob` (its default is
off, unlike Mixtral's). Every layer must be sparse (`decoder_sparse_step` 1, no
`mlp_only_layers`); a checkpoint mixing dense and sparse layers is refused in one line. Experts
load from the layout `transformers` 5 saves (`mlp.gate.weight`, `mlp.experts.gate_up_proj`
[experts, 2 d_mlp, d_model] with the gate projection first, `mlp.experts.down_proj`) or from the
Hub's (`mlp.experts.{e}.gate_proj|up_proj|down_proj.weight`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from lenscope.errors import UnsupportedArchitectureError
from lenscope.model.config import ModelConfig
from lenscope.model.convert import Getter, StateDict, need
from lenscope.model.families.qk import qk_config, qk_weights
from lenscope.model.hf import llama_config, llama_weights


def _check_sparse(c: dict[str, Any], arch: str) -> None:
    step = int(c.get("decoder_sparse_step") or 1)
    dense = list(c.get("mlp_only_layers") or [])
    n_layers = int(need(c, "num_hidden_layers"))
    sparse = [i for i in range(n_layers) if i not in dense and (i + 1) % step == 0]
    if len(sparse) != n_layers:
        raise UnsupportedArchitectureError(
            f"{arch} with dense MLP layers (decoder_sparse_step={step}, mlp_only_layers="
            f"{dense}) is not supported; lenscope runs it with every layer sparse"
        )


def _mixture(c: dict[str, Any], base: ModelConfig, arch: str) -> ModelConfig:
    return replace(
        base,
        num_experts=int(need(c, "num_experts", "num_local_experts")),
        experts_per_token=int(need(c, "num_experts_per_tok")),
        experts_renormalize=bool(c.get("norm_topk_prob", False)),
        architecture=arch,
    )


def qwen3_moe_config(c: dict[str, Any], name: str) -> ModelConfig:
    _check_sparse(c, "qwen3_moe")
    m = int(need(c, "moe_intermediate_size"))
    base = qk_config({**c, "model_type": "qwen3", "intermediate_size": m}, name)
    return _mixture(c, base, "qwen3_moe")


def qwen2_moe_config(c: dict[str, Any], name: str) -> ModelConfig:
    _check_sparse(c, "qwen2_moe")
    m = int(need(c, "moe_intermediate_size"))
    window = c.get("sliding_window") if c.get("use_sliding_window") else None  # 0 when unused
    qwen2 = {**c, "model_type": "qwen2", "intermediate_size": m, "sliding_window": window}
    base = llama_config(qwen2, name)
    shared = int(c.get("shared_expert_intermediate_size") or 0)
    bias = bool(c.get("qkv_bias", True))
    return replace(_mixture(c, base, "qwen2_moe"), d_mlp_shared=shared, attn_bias=bias)


def qwen3_moe_weights(sd: StateDict, cfg: ModelConfig) -> StateDict:
    return _with_experts(sd, cfg, qk_weights)


def qwen2_moe_weights(sd: StateDict, cfg: ModelConfig) -> StateDict:
    return _with_experts(sd, cfg, llama_weights)


def _with_experts(
    sd: StateDict, cfg: ModelConfig, convert: Callable[[StateDict, ModelConfig], StateDict]
) -> StateDict:
    d, m, n = cfg.d_model, cfg.d_mlp, cfg.num_experts
    # the dense family's conversion for everything but the MLPs, handed empty placeholders
    dense = {k: v for k, v in sd.items() if ".mlp." not in k}
    for i in range(cfg.n_layers):
        for x in ("gate", "up", "down"):
            dense[f"model.layers.{i}.mlp.{x}_proj.weight"] = torch.empty(0, 0)
    out = {k: v for k, v in convert(dense, cfg).items() if ".mlp." not in k}
    g = Getter({k.removeprefix("model."): v for k, v in sd.items()})
    for i in range(cfg.n_layers):
        p, o = f"layers.{i}.mlp.", f"blocks.{i}.mlp."
        out[o + "W_gate"] = g(p + "gate.weight", (n, d)).T
        if p + "experts.gate_up_proj" in g.sd:
            gate_up = g(p + "experts.gate_up_proj", (n, 2 * m, d))
            down = g(p + "experts.down_proj", (n, d, m))
            parts = [(gate_up[e, :m], gate_up[e, m:], down[e]) for e in range(n)]
        else:
            x = p + "experts.{}."
            parts = [
                (
                    g(x.format(e) + "gate_proj.weight", (m, d)),
                    g(x.format(e) + "up_proj.weight", (m, d)),
                    g(x.format(e) + "down_proj.weight", (d, m)),
                )
                for e in range(n)
            ]
        if cfg.d_mlp_shared:
            s, x = cfg.d_mlp_shared, p + "shared_expert."
            out[o + "W_shared_gate"] = g(p + "shared_expert_gate.weight", (1, d)).T
            parts.append(
                (
                    g(x + "gate_proj.weight", (s, d)),
                    g(x + "up_proj.weight", (s, d)),
                    g(x + "down_proj.weight", (d, s)),
                )
            )
        for e, (gate, up, down_e) in enumerate(parts):
            out |= {
                f"{o}experts.{e}.W_gate": gate.T,
                f"{o}experts.{e}.W_in": up.T,
                f"{o}experts.{e}.W_out": down_e.T,
            }
    return out
