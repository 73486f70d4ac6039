"""Convert local Hugging Face checkpoints (GPT-2, GPT-NeoX/Pythia, Llama/Mistral/Qwen2) offline.

A checkpoint is a directory with `config.json` and `model.safetensors` (or a sharded index, or a
`pytorch_model.bin` read with `weights_only=True`). Each family maps its config to a `ModelConfig`
and its tensors to lenscope's fused layout; every expected tensor is checked for presence and shape.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lenscope.errors import CheckpointError, UnsupportedArchitectureError
from lenscope.model.config import ModelConfig
from lenscope.model.convert import Getter, StateDict, llama_shape, need
from lenscope.model.mapped import Mapped, open_safetensors


def hf_cache_dirs() -> list[Path]:
    """Where a local Hugging Face cache may hold snapshots (never contacted over the network)."""
    env = os.environ
    out = []
    if "HF_HUB_CACHE" in env:
        out.append(Path(env["HF_HUB_CACHE"]))
    if "HF_HOME" in env:
        out.append(Path(env["HF_HOME"]) / "hub")
    out.append(Path.home() / ".cache" / "huggingface" / "hub")
    return out


def find_in_hf_cache(model_id: str) -> Path | None:
    """The snapshot directory of `org/name` in the local HF cache, if there is one."""
    folder = "models--" + model_id.replace("/", "--")
    for root in hf_cache_dirs():
        base = root / folder
        snaps = base / "snapshots"
        if not snaps.is_dir():
            continue
        ref = base / "refs" / "main"
        if ref.is_file():
            cand = snaps / ref.read_text().strip()
            if (cand / "config.json").is_file():
                return cand
        for cand in sorted(snaps.iterdir()):
            if (cand / "config.json").is_file():
                return cand
    return None


def read_hf_config(directory: Path) -> dict[str, Any]:
    f = directory / "config.json"
    if not f.is_file():
        raise CheckpointError(
            f"{directory} has no config.json; it is not a Hugging Face checkpoint"
        )
    try:
        raw = json.loads(f.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{f} is not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{f} must hold a JSON object")
    return raw


def load_hf_tensors(directory: Path) -> StateDict:
    """All weight tensors of a checkpoint directory: views into memory-mapped safetensors (single
    or sharded, every header checked first), else a `pytorch_model.bin` read with weights_only."""
    mapped = map_hf_tensors(directory)
    if mapped is not None:
        return mapped.tensors
    binf = directory / "pytorch_model.bin"
    if binf.is_file():
        try:
            try:  # the zip format maps (copy-on-write); the legacy one must be read whole
                sd = torch.load(binf, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:
                sd = torch.load(binf, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for a bad pickle
            raise CheckpointError(f"{binf} cannot be loaded safely: {e}") from None
        return {k: v for k, v in sd.items() if isinstance(v, Tensor)}
    if (directory / "pytorch_model.bin.index.json").is_file():
        raise CheckpointError(f"{directory} {SHARDED_BIN}")
    raise CheckpointError(
        f"no weights in {directory}: expected model.safetensors, a sharded "
        "model.safetensors.index.json, or pytorch_model.bin"
    )


SHARDED_BIN = (
    "holds only sharded pytorch_model-*.bin weights (pickles); convert them to safetensors once: "
    'python -c "import sys, transformers as t; t.AutoModelForCausalLM.from_pretrained(sys.argv[1])'
    '.save_pretrained(sys.argv[2])" DIR OUT'
)


def map_hf_tensors(directory: Path) -> Mapped | None:
    """The checkpoint's safetensors, checked and memory-mapped; None when it has none."""
    return open_safetensors(directory)


def _rope(c: dict[str, Any]) -> tuple[float, float, dict[str, Any] | None]:
    """(theta, partial_rotary_factor, scaling) from old- or new-style HF configs."""
    params = c.get("rope_parameters") or {}
    theta = float(params.get("rope_theta", c.get("rope_theta", c.get("rotary_emb_base", 10000.0))))
    partial = float(
        params.get(
            "partial_rotary_factor", c.get("partial_rotary_factor", c.get("rotary_pct", 1.0))
        )
    )
    scaling = c.get("rope_scaling")
    rtype = (
        params.get("rope_type") or (scaling or {}).get("rope_type") or (scaling or {}).get("type")
    )
    if rtype not in (None, "default"):
        raise UnsupportedArchitectureError(
            f"rope scaling {rtype!r} is not supported yet; only plain rotary embeddings are"
        )
    return theta, partial, scaling


# ---- GPT-2 -------------------------------------------------------------------------------------
def gpt2_config(c: dict[str, Any], name: str) -> ModelConfig:
    if c.get("scale_attn_by_inverse_layer_idx"):
        raise UnsupportedArchitectureError("GPT-2 with scale_attn_by_inverse_layer_idx")
    d = int(need(c, "n_embd", "hidden_size"))
    return ModelConfig(
        n_layers=int(need(c, "n_layer", "num_hidden_layers")),
        d_model=d,
        n_heads=int(need(c, "n_head", "num_attention_heads")),
        d_vocab=int(need(c, "vocab_size")),
        n_ctx=int(need(c, "n_positions", "n_ctx")),
        d_mlp=int(c.get("n_inner") or 4 * d),
        act_fn=c.get("activation_function", "gelu_new"),
        eps=float(c.get("layer_norm_epsilon", 1e-5)),
        tie_embeddings=bool(c.get("tie_word_embeddings", True)),
        architecture="gpt2",
        name=name,
    )


def gpt2_weights(sd: StateDict, cfg: ModelConfig) -> StateDict:
    sd = {k.removeprefix("transformer."): v for k, v in sd.items()}
    g = Getter(sd)
    out: StateDict = {"W_E": g("wte.weight"), "W_pos": g("wpe.weight")}
    for i in range(cfg.n_layers):
        h, o = f"h.{i}.", f"blocks.{i}."
        out |= {
            o + "ln1.w": g(h + "ln_1.weight"),
            o + "ln1.b": g(h + "ln_1.bias"),
            o + "ln2.w": g(h + "ln_2.weight"),
            o + "ln2.b": g(h + "ln_2.bias"),
            o + "attn.w_qkv": g(h + "attn.c_attn.weight"),
            o + "attn.b_qkv": g(h + "attn.c_attn.bias"),
            o + "attn.w_o": g(h + "attn.c_proj.weight"),
            o + "attn.b_o": g(h + "attn.c_proj.bias"),
            o + "mlp.W_in": g(h + "mlp.c_fc.weight"),
            o + "mlp.b_in": g(h + "mlp.c_fc.bias"),
            o + "mlp.W_out": g(h + "mlp.c_proj.weight"),
            o + "mlp.b_out": g(h + "mlp.c_proj.bias"),
        }
    out["ln_final.w"], out["ln_final.b"] = g("ln_f.weight"), g("ln_f.bias")
    if not cfg.tie_embeddings:
        out["unembed"] = g("lm_head.weight").T
    return out


# ---- GPT-NeoX / Pythia ---------------------------------------------------------------------------
def neox_config(c: dict[str, Any], name: str) -> ModelConfig:
    theta, partial, _ = _rope(c)
    d, h = int(need(c, "hidden_size")), int(need(c, "num_attention_heads"))
    return ModelConfig(
        n_layers=int(need(c, "num_hidden_layers")),
        d_model=d,
        n_heads=h,
        d_vocab=int(need(c, "vocab_size")),
        n_ctx=int(need(c, "max_position_embeddings")),
        d_mlp=int(need(c, "intermediate_size")),
        act_fn=c.get("hidden_act", "gelu"),
        eps=float(c.get("layer_norm_eps", 1e-5)),
        positional="rotary",
        rotary_dim=int((d // h) * partial),
        rotary_base=theta,
        parallel_attn_mlp=bool(c.get("use_parallel_residual", True)),
        attn_bias=bool(c.get("attention_bias", True)),
        attn_out_bias=bool(c.get("attention_bias", True)),
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
        architecture="gpt_neox",
        name=name,
    )


def neox_weights(sd: StateDict, cfg: ModelConfig) -> StateDict:
    g = Getter({k.removeprefix("gpt_neox."): v for k, v in sd.items()})
    h, dh, d = cfg.n_heads, cfg.d_head, cfg.d_model
    out: StateDict = {"W_E": g("embed_in.weight")}
    for i in range(cfg.n_layers):
        p, o = f"layers.{i}.", f"blocks.{i}."
        # query_key_value rows are [head, (q|k|v), d_head]; ours are [(q|k|v), head, d_head].
        w = g(p + "attention.query_key_value.weight", (3 * d, d)).reshape(h, 3, dh, d)
        w = w.permute(1, 0, 2, 3).reshape(3 * h * dh, d)
        out |= {
            o + "ln1.w": g(p + "input_layernorm.weight"),
            o + "ln1.b": g(p + "input_layernorm.bias"),
            o + "ln2.w": g(p + "post_attention_layernorm.weight"),
            o + "ln2.b": g(p + "post_attention_layernorm.bias"),
            o + "attn.w_qkv": w.T,
            o + "attn.w_o": g(p + "attention.dense.weight").T,
            o + "mlp.W_in": g(p + "mlp.dense_h_to_4h.weight").T,
            o + "mlp.b_in": g(p + "mlp.dense_h_to_4h.bias"),
            o + "mlp.W_out": g(p + "mlp.dense_4h_to_h.weight").T,
            o + "mlp.b_out": g(p + "mlp.dense_4h_to_h.bias"),
        }
        if cfg.attn_bias:
            b = g(p + "attention.query_key_value.bias", (3 * d,)).reshape(h, 3, dh)
            out[o + "attn.b_qkv"] = b.permute(1, 0, 2).reshape(-1)
            out[o + "attn.b_o"] = g(p + "attention.dense.bias")
    out["ln_final.w"], out["ln_final.b"] = g("final_layer_norm.weight"), g("final_layer_norm.bias")
    if not cfg.tie_embeddings:
        out["unembed"] = g("embed_out.weight").T
    return out


# ---- Llama / Mistral / Qwen2 ---------------------------------------------------------------------
def llama_config(c: dict[str, Any], name: str) -> ModelConfig:
    arch = str(c.get("model_type"))
    theta, partial, _ = _rope(c)
    d, h = int(need(c, "hidden_size")), int(need(c, "num_attention_heads"))
    dh = int(c.get("head_dim") or d // h)
    qkv_bias = arch == "qwen2" or bool(c.get("attention_bias", False))
    n_layers, n_ctx = int(need(c, "num_hidden_layers")), int(need(c, "max_position_embeddings"))
    window, windowed = _sliding_window(c, arch, n_layers, n_ctx)
    return ModelConfig(
        **llama_shape(c),
        act_fn=c.get("hidden_act", "silu"),
        gated_mlp=True,
        normalization="RMS",
        eps=float(c.get("rms_norm_eps", 1e-6)),
        positional="rotary",
        rotary_dim=int(dh * partial),
        rotary_base=theta,
        attn_bias=qkv_bias,
        attn_out_bias=arch != "qwen2" and bool(c.get("attention_bias", False)),
        mlp_bias=bool(c.get("mlp_bias", False)),
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
        default_prepend_bos=arch != "qwen2",
        sliding_window=window,
        sliding_layers=windowed,
        architecture=arch,
        name=name,
    )


def _sliding_window(
    c: dict[str, Any], arch: str, n_layers: int, n_ctx: int
) -> tuple[int, list[int] | None]:
    """(window, the layers using it or None for all) as `transformers` applies them: Mistral
    windows every layer when `sliding_window` is set; Qwen2 only with `use_sliding_window`, in
    the layers its `layer_types` name "sliding_attention" (older configs: layers from
    `max_window_layers` on). Llama has none. A window that spans the whole context is dropped."""
    raw = c.get("sliding_window")
    if arch not in ("mistral", "qwen2") or raw is None:
        return 0, None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise CheckpointError(f"config.json sliding_window must be a positive integer, got {raw!r}")
    layers: list[int] | None = None
    if arch == "qwen2":
        if not c.get("use_sliding_window"):
            return 0, None
        types = c.get("layer_types")
        if isinstance(types, list) and len(types) == n_layers:
            layers = [i for i, t in enumerate(types) if t == "sliding_attention"]
        else:
            first = int(c.get("max_window_layers", 28) or 0)  # 28: transformers' default
            layers = list(range(first, n_layers))
        if len(layers) == n_layers:
            layers = None
    if raw >= n_ctx or layers == []:
        return 0, None  # every key the context can hold is inside the window
    return raw, layers


def llama_weights(sd: StateDict, cfg: ModelConfig) -> StateDict:
    g = Getter({k.removeprefix("model."): v for k, v in sd.items()})
    out: StateDict = {"W_E": g("embed_tokens.weight")}
    for i in range(cfg.n_layers):
        p, o = f"layers.{i}.", f"blocks.{i}."
        a = p + "self_attn."
        qkv = [g(a + f"{x}_proj.weight") for x in "qkv"]
        out |= {
            o + "ln1.w": g(p + "input_layernorm.weight"),
            o + "ln2.w": g(p + "post_attention_layernorm.weight"),
            o + "attn.w_qkv": torch.cat(qkv, 0).T,
            o + "attn.w_o": g(a + "o_proj.weight").T,
            o + "mlp.W_gate": g(p + "mlp.gate_proj.weight").T,
            o + "mlp.W_in": g(p + "mlp.up_proj.weight").T,
            o + "mlp.W_out": g(p + "mlp.down_proj.weight").T,
        }
        if cfg.attn_bias:
            out[o + "attn.b_qkv"] = torch.cat([g(a + f"{x}_proj.bias") for x in "qkv"])
        if cfg.attn_out_bias:
            out[o + "attn.b_o"] = g(a + "o_proj.bias")
        if cfg.mlp_bias:
            out[o + "mlp.b_in"] = g(p + "mlp.up_proj.bias")
            out[o + "mlp.b_out"] = g(p + "mlp.down_proj.bias")
    out["ln_final.w"] = g("norm.weight")
    if not cfg.tie_embeddings:
        out["unembed"] = g("lm_head.weight").T
    return out


Family = tuple[
    Callable[[dict[str, Any], str], ModelConfig], Callable[[StateDict, ModelConfig], StateDict]
]
FAMILIES: dict[str, Family] = {
    "gpt2": (gpt2_config, gpt2_weights),
    "gpt_neox": (neox_config, neox_weights),
    "llama": (llama_config, llama_weights),
    "mistral": (llama_config, llama_weights),
    "qwen2": (llama_config, llama_weights),
}


def family_of(c: dict[str, Any], directory: Path) -> Family:
    arch = c.get("model_type")
    if arch not in FAMILIES:
        raise UnsupportedArchitectureError(unsupported_reason(c, directory))
    return FAMILIES[arch]


def unsupported_reason(c: dict[str, Any], directory: Path | str) -> str:
    """One line naming the checkpoint's architecture and the ones lenscope converts."""
    classes = c.get("architectures")
    named = f" ({', '.join(map(str, classes))})" if isinstance(classes, list) and classes else ""
    return (
        f"{directory}: model_type {c.get('model_type')!r} is not supported{named}; lenscope "
        f"converts {', '.join(sorted(FAMILIES))}"
    )
