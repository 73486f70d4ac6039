"""What every Hugging Face family's conversion needs (`lenscope.model.hf` and
`lenscope.model.families`): required config keys, rotary bases, per-layer windows
and a tensor getter that names a missing or misshapen tensor."""

from __future__ import annotations

from typing import Any, TypedDict

import torch
from torch import Tensor

from lenscope.errors import CheckpointError, UnsupportedArchitectureError

StateDict = dict[str, Tensor]


def need(c: dict[str, Any], *keys: str) -> Any:
    """The first of `keys` that the config sets, or a clear error naming them."""
    for k in keys:
        if k in c and c[k] is not None:
            return c[k]
    raise CheckpointError(f"config.json lacks {' / '.join(keys)}")


class LlamaShape(TypedDict):
    n_layers: int
    d_model: int
    n_heads: int
    d_head: int
    n_kv_heads: int
    d_vocab: int
    n_ctx: int
    d_mlp: int


def llama_shape(c: dict[str, Any]) -> LlamaShape:
    """The shape fields of a Llama-style `config.json` as `ModelConfig` keywords (layers, widths,
    heads, grouped key/value heads, vocabulary, context), shared by every family built on it."""
    d, h = int(need(c, "hidden_size")), int(need(c, "num_attention_heads"))
    return LlamaShape(
        n_layers=int(need(c, "num_hidden_layers")),
        d_model=d,
        n_heads=h,
        d_head=int(c.get("head_dim") or d // h),
        n_kv_heads=int(c.get("num_key_value_heads") or h),
        d_vocab=int(need(c, "vocab_size")),
        n_ctx=int(need(c, "max_position_embeddings")),
        d_mlp=int(need(c, "intermediate_size")),
    )


def rope_theta(params: dict[str, Any] | None, default: float, where: str = "") -> float:
    """The base of one plain rotary embedding from a `rope_parameters` entry (or None)."""
    params = params or {}
    rtype = params.get("rope_type", params.get("type"))
    if rtype not in (None, "default"):
        raise UnsupportedArchitectureError(
            f"rope scaling {rtype!r}{where} is not supported yet; only plain rotary embeddings are"
        )
    return float(params.get("rope_theta", default))


def layer_types(c: dict[str, Any], n_layers: int) -> list[str] | None:
    """The config's `layer_types` ("sliding_attention" / "full_attention" per layer), if any."""
    types = c.get("layer_types")
    if types is None:
        return None
    if not isinstance(types, list) or len(types) != n_layers:
        raise CheckpointError(f"config.json layer_types must list {n_layers} layer types")
    return [str(t) for t in types]


def window_of(c: dict[str, Any]) -> int:
    raw = c.get("sliding_window")
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise CheckpointError(f"config.json sliding_window must be a positive integer, got {raw!r}")
    return raw


class Getter:
    """Fetch a checkpoint tensor by name with a clear error when it is missing or misshapen."""

    def __init__(self, sd: StateDict) -> None:
        self.sd = sd

    def __call__(self, key: str, shape: tuple[int, ...] | None = None) -> Tensor:
        if key not in self.sd:
            near = [k for k in self.sd if k.split(".")[-2:] == key.split(".")[-2:]][:2]
            hint = f" (found {', '.join(near)})" if near else ""
            raise CheckpointError(f"checkpoint is missing tensor {key!r}{hint}")
        t = self.sd[key]
        if shape is not None and tuple(t.shape) != shape:
            raise CheckpointError(
                f"tensor {key!r} has shape {tuple(t.shape)}, config implies {shape}"
            )
        return t


def attention_and_mlp(g: Getter, p: str, o: str, bias: bool, mlp_bias: bool) -> StateDict:
    """One layer's q/k/v/o projections and gated MLP in lenscope's fused layout (Llama names)."""
    a = p + "self_attn."
    out: StateDict = {
        o + "attn.w_qkv": torch.cat([g(a + f"{x}_proj.weight") for x in "qkv"], 0).T,
        o + "attn.w_o": g(a + "o_proj.weight").T,
        o + "mlp.W_gate": g(p + "mlp.gate_proj.weight").T,
        o + "mlp.W_in": g(p + "mlp.up_proj.weight").T,
        o + "mlp.W_out": g(p + "mlp.down_proj.weight").T,
    }
    if bias:
        out[o + "attn.b_qkv"] = torch.cat([g(a + f"{x}_proj.bias") for x in "qkv"])
        out[o + "attn.b_o"] = g(a + "o_proj.bias")
    if mlp_bias:
        out[o + "mlp.b_in"] = g(p + "mlp.up_proj.bias")
        out[o + "mlp.b_out"] = g(p + "mlp.down_proj.bias")
    return out
