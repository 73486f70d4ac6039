"""`load_model`: shipped names, trained artifacts, local checkpoints and the local HF cache."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

import lenscope.model.families  # noqa: F401  (enters Phi-3, GPT-J and Mixtral in hf.FAMILIES)
from lenscope.artifacts import (
    Manifest,
    lenscope_home,
    read_manifest,
    shipped_dir,
    writing_artifact,
)
from lenscope.device import resolve_device
from lenscope.errors import CheckpointError, InputError, ModelNotFoundError
from lenscope.model.config import ModelConfig
from lenscope.model.hf import (
    family_of,
    find_in_hf_cache,
    load_hf_tensors,
    map_hf_tensors,
    read_hf_config,
)
from lenscope.model.hf_cache import scan_hf_cache
from lenscope.model.mapped import Mapped
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
    family: str = ""  # the architecture (config.json's model_type for a Hugging Face checkpoint)
    problem: str = ""  # why it cannot load; "" when it can


def list_models() -> list[ModelEntry]:
    """Every model `load_model` can open by name, without loading weights. A shipped model whose
    name a trained one also has is listed with `shadowed=True`: the name loads the trained one.
    Checkpoints in the local Hugging Face cache follow, by family; one lenscope cannot load says
    why in `problem`."""
    out: list[ModelEntry] = []
    trained = trained_models_dir()
    for source, root in (("shipped", shipped_models_dir()), ("trained", trained)):
        if not root.is_dir():
            continue
        for d in sorted(root.iterdir()):
            if (d / "manifest.json").is_file():
                family = ""
                try:
                    m = read_manifest(d, MODEL_KIND)
                    c = m.data.get("config", {})
                    ev = m.data.get("eval", {})
                    family = str(c.get("architecture") or "")
                    summary = (
                        f"{c.get('n_layers')}L d{c.get('d_model')} {c.get('n_heads')}h "
                        f"vocab {c.get('d_vocab')}"
                        + (f", val loss {ev['val_loss']:.3f}" if "val_loss" in ev else "")
                    )
                except Exception as e:  # listing never fails on one bad entry
                    summary = f"unreadable: {e}"
                shadowed = source == "shipped" and (trained / d.name).is_dir()
                out.append(ModelEntry(d.name, source, d, summary, shadowed, family))
    for c in scan_hf_cache():
        out.append(
            ModelEntry(c.name, "hf-cache", c.path, c.summary, family=c.family, problem=c.problem)
        )
    return out


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
    entries = list_models()
    for e in entries:
        if e.source == "hf-cache" and e.name == s and e.problem:
            raise CheckpointError(f"{s} is in the local HF cache but cannot load: {e.problem}")
    names = sorted({m.name for m in entries if not m.problem})
    raise ModelNotFoundError(
        f"no model named {s!r}: not a directory, a shipped or trained model, or in the local "
        f"HF cache. Available: {', '.join(names) or 'none'} (see `lenscope models`)"
    )


def load_model(
    name_or_path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> HookedTransformer:
    """Load a shipped/trained lenscope model or a local Hugging Face checkpoint, offline.

    `device` is anything `lenscope.device.resolve_device` accepts ("cpu", "cuda", "cuda:N",
    "auto" or a `torch.device`). `dtype=None` keeps a Hugging Face checkpoint's own dtype (bf16
    weights stay bf16, on the CPU as on a GPU) and loads lenscope's artifacts in float32; a given
    dtype converts. Safetensors are memory-mapped and copied into the model one tensor at a time,
    straight onto the device, so loading holds about one copy of the weights. A device that is
    absent, or a dtype the device cannot run, is refused before any weight is read."""
    dev = resolve_device(device)
    d = resolve_model_path(name_or_path)
    if dtype is not None:
        check_dtype_runs(dtype, dev)
    if (d / "manifest.json").is_file():
        model = _load_lenscope(d, dev)
        return model.to(device=dev, dtype=dtype)
    model = _load_hf(d, Path(str(name_or_path)).name, dtype, dev)
    return model.to(device=dev)


RUNNABLE = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def check_dtype_runs(dtype: torch.dtype, device: str | torch.device) -> None:
    """Refuse, in one line, a dtype the device truly cannot run: a tiny matmul + softmax probe
    (float16 matmuls on an old CPU build, bfloat16 on a GPU older than Ampere, ...)."""
    if dtype not in RUNNABLE:
        names = ", ".join(str(t).removeprefix("torch.") for t in RUNNABLE)
        raise InputError(f"lenscope runs models in {names}; {dtype} is not one of them")
    try:
        x = torch.ones(4, 4, dtype=dtype, device=device)
        (x @ x).softmax(-1).sum().item()
    except Exception as e:  # torch raises RuntimeError, AssertionError, ... by backend
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(
            f"{str(dtype).removeprefix('torch.')} cannot run on device {str(device)!r}: {why}"
        ) from None


def _load_lenscope(d: Path, device: torch.device) -> HookedTransformer:
    m = read_manifest(d, MODEL_KIND, MODEL_SCHEMA)
    cfg = ModelConfig.from_dict(m.data["config"])
    try:
        sd = load_file(str(d / WEIGHTS))
    except (SafetensorError, FileNotFoundError, OSError) as e:
        raise CheckpointError(f"cannot read {d / WEIGHTS}: {e}; the artifact is corrupt") from None
    tok = Tokenizer.from_file(d) if (d / "tokenizer.json").is_file() else None
    model = empty_model(cfg, tok)
    _assign(model, sd, str(d), torch.float32, device)
    model.manifest = m  # type: ignore[assignment]
    return model.eval()


def _load_hf(
    d: Path, name: str, dtype: torch.dtype | None, device: torch.device
) -> HookedTransformer:
    raw = read_hf_config(d)
    to_cfg, to_weights = family_of(raw, d)
    cfg = to_cfg(raw, name)
    mapped = map_hf_tensors(d)  # every header and shard checked; nothing read yet
    sd = to_weights(mapped.tensors if mapped else load_hf_tensors(d), cfg)
    target = dtype or stored_dtype(sd, d)
    check_dtype_runs(target, device)
    tok = Tokenizer.from_file(d) if (d / "tokenizer.json").is_file() else None
    model = empty_model(cfg, tok)
    if mapped is not None:
        mapped.release_all()  # the pages the conversion read (fused q/k/v and the like)
    _assign(model, sd, str(d), target, device, mapped)
    return model.eval()


def stored_dtype(sd: dict[str, Tensor], where: Path) -> torch.dtype:
    """The floating dtype that holds most of a checkpoint's bytes."""
    sizes: dict[torch.dtype, int] = {}
    for t in sd.values():
        if t.is_floating_point():
            sizes[t.dtype] = sizes.get(t.dtype, 0) + t.numel() * t.element_size()
    if not sizes:
        return torch.float32
    best = max(sizes, key=lambda k: sizes[k])
    if best not in RUNNABLE:
        raise CheckpointError(
            f"{where}: weights are stored as {best}, which lenscope cannot run; "
            "pass dtype=torch.bfloat16 (or float32) to convert them"
        )
    return best


_BUILDING = threading.Lock()


def empty_model(cfg: ModelConfig, tok: Tokenizer | None) -> HookedTransformer:
    """A model whose parameters are on the `meta` device (no memory, no random init) and whose
    buffers are real: `_assign` puts the checkpoint's tensors in place of the parameters. Only
    this thread's modules are built so, while it builds; other threads' are untouched."""
    with _BUILDING:
        original = nn.Module.register_parameter
        me = threading.get_ident()

        def to_meta(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
            original(self, name, param)
            if param is not None and threading.get_ident() == me:
                meta = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
                self._parameters[name] = meta

        nn.Module.register_parameter = to_meta  # type: ignore[method-assign]
        try:
            return HookedTransformer(cfg, tok)
        finally:
            nn.Module.register_parameter = original  # type: ignore[method-assign]


def _assign(
    model: HookedTransformer,
    sd: dict[str, Tensor],
    where: str,
    dtype: torch.dtype,
    device: torch.device,
    mapped: Mapped | None = None,
) -> None:
    """Check every name and shape first, then copy each tensor into a fresh parameter of `dtype`
    on `device` and give its mapped pages back, so at most one tensor is held twice (on a GPU,
    the host holds only the mapped pages being copied)."""
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
    # Tensors the conversion built (not views of the files) first: they are freed as they go.
    order = sorted(own, key=lambda k: mapped is not None and mapped.holds(sd[k]))
    new: dict[int, nn.Parameter] = {}
    with torch.no_grad():
        for k in order:
            src = sd.pop(k)
            t = torch.empty(tuple(src.shape), dtype=dtype, device=device)
            t.copy_(src)
            new[id(own[k])] = nn.Parameter(t, requires_grad=own[k].requires_grad)
            if mapped is not None:
                mapped.release(src)
            del src
    for mod in model.modules():
        for leaf, old in list(mod._parameters.items()):
            if old is not None and id(old) in new:
                mod._parameters[leaf] = new[id(old)]


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
