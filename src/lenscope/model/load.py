"""`load_model`: shipped names, trained artifacts, local checkpoints and the local HF cache."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

import lenscope.model.families  # noqa: F401  (enters Phi-3, GPT-J and Mixtral in hf.FAMILIES)
from lenscope.artifacts import (
    Manifest,
    lenscope_home,
    read_manifest,
    shipped_dir,
    writing_artifact,
)
from lenscope.errors import CheckpointError, ModelNotFoundError
from lenscope.model.config import ModelConfig
from lenscope.model.hf import family_of, find_in_hf_cache, load_hf_tensors, read_hf_config
from lenscope.model.tokenizer import Tokenizer
from lenscope.model.transformer import HookedTransformer

MODEL_KIND = "model"
MODEL_SCHEMA = 1
WEIGHTS = "model.safetensors"


def assets_dir() -> Path:
    """The shipped assets (models, ...): `LENSCOPE_ASSETS`, the installed package's, the checkout's."""
    return shipped_dir("assets")


def shipped_models_dir() -> Path:
    return assets_dir() / "models"


def trained_models_dir() -> Path:
    return lenscope_home() / "models"


@dataclass
class ModelEntry:
    name: str
    source: str  # "shipped" | "trained" | "hf-cache"
    path: Path
    summary: str
    shadowed: bool = False  # a trained model of the same name loads instead of this shipped one


def list_models() -> list[ModelEntry]:
    """Every model `load_model` can open by name, without loading weights. A shipped model whose
    name a trained one also has is listed with `shadowed=True`: the name loads the trained one."""
    out: list[ModelEntry] = []
    trained = trained_models_dir()
    for source, root in (("shipped", shipped_models_dir()), ("trained", trained)):
        if not root.is_dir():
            continue
        for d in sorted(root.iterdir()):
            if (d / "manifest.json").is_file():
                try:
                    m = read_manifest(d, MODEL_KIND)
                    c = m.data.get("config", {})
                    ev = m.data.get("eval", {})
                    summary = (
                        f"{c.get('n_layers')}L d{c.get('d_model')} {c.get('n_heads')}h "
                        f"vocab {c.get('d_vocab')}"
                        + (f", val loss {ev['val_loss']:.3f}" if "val_loss" in ev else "")
                    )
                except Exception as e:  # listing never fails on one bad entry
                    summary = f"unreadable: {e}"
                shadowed = source == "shipped" and (trained / d.name).is_dir()
                out.append(ModelEntry(d.name, source, d, summary, shadowed))
    for root in _hf_roots():
        for d in sorted(root.glob("models--*")):
            name = d.name.removeprefix("models--").replace("--", "/")
            snap = find_in_hf_cache(name)
            if snap is not None:
                arch = read_hf_config(snap).get("model_type", "?")
                out.append(ModelEntry(name, "hf-cache", snap, f"{arch} checkpoint"))
    return out


def _hf_roots() -> list[Path]:
    from lenscope.model.hf import hf_cache_dirs

    return [r for r in hf_cache_dirs() if r.is_dir()]


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """Find the directory for a name or path, or raise `ModelNotFoundError` listing the options."""
    s = str(name_or_path)
    p = Path(s).expanduser()
    if p.is_dir():
        return p
    if p.exists():
        raise ModelNotFoundError(f"{p} is a file; give the checkpoint's directory")
    if "/" not in s:
        # What you trained wins over a shipped model of the same name (`lenscope train --recipe
        # mini` writes $LENSCOPE_HOME/models/mini); `lenscope models` marks the shipped one.
        for root in (trained_models_dir(), shipped_models_dir()):
            if (root / s).is_dir():
                return root / s
    snap = find_in_hf_cache(s)
    if snap is not None:
        return snap
    names = sorted({m.name for m in list_models()})
    raise ModelNotFoundError(
        f"no model named {s!r}: not a directory, a shipped or trained model, or in the local "
        f"HF cache. Available: {', '.join(names) or 'none'} (see `lenscope models`)"
    )


def load_model(
    name_or_path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> HookedTransformer:
    """Load a shipped/trained lenscope model or a local Hugging Face checkpoint, offline."""
    d = resolve_model_path(name_or_path)
    if (d / "manifest.json").is_file():
        model = _load_lenscope(d)
    else:
        model = _load_hf(d, Path(str(name_or_path)).name)
    return model.to(device=device, dtype=dtype)


def _load_lenscope(d: Path) -> HookedTransformer:
    m = read_manifest(d, MODEL_KIND, MODEL_SCHEMA)
    cfg = ModelConfig.from_dict(m.data["config"])
    try:
        sd = load_file(str(d / WEIGHTS))
    except (SafetensorError, FileNotFoundError, OSError) as e:
        raise CheckpointError(f"cannot read {d / WEIGHTS}: {e}; the artifact is corrupt") from None
    tok = Tokenizer.from_file(d) if (d / "tokenizer.json").is_file() else None
    model = HookedTransformer(cfg, tok)
    _assign(model, {k: v.float() for k, v in sd.items()}, str(d))
    model.manifest = m  # type: ignore[assignment]
    return model.eval()


def _load_hf(d: Path, name: str) -> HookedTransformer:
    raw = read_hf_config(d)
    to_cfg, to_weights = family_of(raw, d)
    cfg = to_cfg(raw, name)
    sd = to_weights(load_hf_tensors(d), cfg)
    tok = Tokenizer.from_file(d) if (d / "tokenizer.json").is_file() else None
    model = HookedTransformer(cfg, tok)
    _assign(model, {k: v.float() for k, v in sd.items()}, str(d))
    return model.eval()


def _assign(model: HookedTransformer, sd: dict[str, Tensor], where: str) -> None:
    own = dict(model.named_parameters())
    missing = sorted(set(own) - set(sd))
    extra = sorted(set(sd) - set(own))
    if missing or extra:
        raise CheckpointError(
            f"{where}: weights do not match the config"
            + (f"; missing {', '.join(missing[:4])}" if missing else "")
            + (f"; unexpected {', '.join(extra[:4])}" if extra else "")
        )
    for k, p in own.items():
        if tuple(sd[k].shape) != tuple(p.shape):
            raise CheckpointError(
                f"{where}: tensor {k} has shape {tuple(sd[k].shape)}, the config implies "
                f"{tuple(p.shape)}"
            )
    with torch.no_grad():
        for k, p in own.items():
            p.copy_(sd[k])


def save_model(
    model: HookedTransformer,
    dest: Path | str,
    *,
    provenance: dict[str, Any] | None = None,
    eval: dict[str, Any] | None = None,
    half: bool = False,
    token_counts: list[int] | None = None,
) -> Path:
    """Write a model artifact: manifest.json + model.safetensors (+ tokenizer.json)."""
    dtype = torch.float16 if half else torch.float32
    sd = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.named_parameters()}
    data: dict[str, Any] = {
        "config": model.cfg.to_dict(),
        "eval": eval or {},
        "dtype": str(dtype).removeprefix("torch."),
        "fingerprint": fingerprint(model),
    }
    if token_counts is not None:
        data["token_counts"] = token_counts
    man = Manifest(
        kind=MODEL_KIND, schema_version=MODEL_SCHEMA, provenance=provenance or {}, data=data
    )
    with writing_artifact(dest, man) as tmp:
        save_file(sd, str(tmp / WEIGHTS))
        if model.tokenizer is not None:
            model.tokenizer.save(tmp)
    return Path(dest)


def fingerprint(model: HookedTransformer) -> str:
    """A short hash of config and weights: records and SAEs check they belong to this model."""
    h = hashlib.sha256(json.dumps(model.cfg.to_dict(), sort_keys=True).encode())
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            h.update(p.detach().to("cpu", torch.float16).numpy().tobytes()[:65536])
    return h.hexdigest()[:16]
