"""Mixtral (`MixtralForCausalLM`, `model_type: mixtral`): Mistral's attention (grouped-query,
rotary, sliding window when set) with each MLP a sparse mixture of experts (`lenscope.model.moe`).

Experts load from either layout: the one `transformers` 5 saves (`mlp.gate.weight`, and per
layer `mlp.experts.gate_up_proj` [experts, 2 d_mlp, d_model] with the gate projection first and
`mlp.experts.down_proj` [experts, d_model, d_mlp]) and the one on the Hub
(`block_sparse_moe.gate.weight`, `block_sparse_moe.experts.{e}.w1|w2|w3.weight`: gate, down,
up). The router becomes `blocks.{l}.mlp.W_gate` [d_model, experts] and expert e's projections
`blocks.{l}.mlp.experts.{e}.W_gate|W_in|W_out`, each [in, out] as lenscope's dense MLP.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from lenscope.model.config import ModelConfig
from lenscope.model.convert import Getter, StateDict, need
from lenscope.model.hf import llama_config, llama_weights


def mixtral_config(c: dict[str, Any], name: str) -> ModelConfig:
    # Mistral's attention and norms; the MLP width is each expert's.
    base = llama_config({**c, "model_type": "mistral"}, name)
    return replace(
        base,
        num_experts=int(need(c, "num_local_experts", "num_experts")),
        experts_per_token=int(need(c, "num_experts_per_tok")),
        architecture="mixtral",
    )


def mixtral_weights(sd: StateDict, cfg: ModelConfig) -> StateDict:
    d, m, n = cfg.d_model, cfg.d_mlp, cfg.num_experts
    # Mistral's conversion for everything but the MLPs, which it is handed as empty placeholders
    dense = {k: v for k, v in sd.items() if ".mlp." not in k and ".block_sparse_moe." not in k}
    for i in range(cfg.n_layers):
        for x in ("gate", "up", "down"):
            dense[f"model.layers.{i}.mlp.{x}_proj.weight"] = torch.empty(0, 0)
    out = {k: v for k, v in llama_weights(dense, cfg).items() if ".mlp." not in k}
    g = Getter({k.removeprefix("model."): v for k, v in sd.items()})
    for i in range(cfg.n_layers):
        p, o = f"layers.{i}.", f"blocks.{i}.mlp."
        legacy = p + "block_sparse_moe.gate.weight" in g.sd
        moe = p + ("block_sparse_moe." if legacy else "mlp.")
        out[o + "W_gate"] = g(moe + "gate.weight", (n, d)).T
        if legacy:
            for e in range(n):
                x = f"{moe}experts.{e}."
                out |= {
                    f"{o}experts.{e}.W_gate": g(x + "w1.weight", (m, d)).T,
                    f"{o}experts.{e}.W_in": g(x + "w3.weight", (m, d)).T,
                    f"{o}experts.{e}.W_out": g(x + "w2.weight", (d, m)).T,
                }
            continue
        gate_up = g(moe + "experts.gate_up_proj", (n, 2 * m, d))
        down = g(moe + "experts.down_proj", (n, d, m))
        for e in range(n):
            out |= {
                f"{o}experts.{e}.W_gate": gate_up[e, :m].T,
                f"{o}experts.{e}.W_in": gate_up[e, m:].T,
                f"{o}experts.{e}.W_out": down[e].T,
            }
    return out
