"""The tuned lens: one affine translator per block boundary, saved as a `tuned_lens` artifact.

Translator l maps the residual after l blocks to `x + x @ W_l + b_l` before the final norm and
unembedding (Belrose et al. 2023). W and b start at zero, so an untrained tuned lens *is* the
logit lens. The last boundary (after every block) has no translator: it is the model's output.

Artifact layout: `manifest.json` (kind "tuned_lens", schema 1; the model's name and fingerprint,
training settings and figures) and `translators.safetensors` (`weight` [n_layers, d, d], `bias`
[n_layers, d]). A bare name resolves in `$LENSCOPE_HOME/lenses/` (trained) then `assets/lenses/`
(shipped, e.g. `mini-tuned`): one you trained wins over a shipped one of its name, as for models
and SAEs. "auto" means `<model>-tuned` there, the first one made for the model at hand.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from lenscope.artifacts import Manifest, lenscope_home, read_manifest, writing_artifact
from lenscope.device import resolve_device
from lenscope.errors import ArtifactError, InputError
from lenscope.lens.boundaries import Boundary
from lenscope.linalg import linear
from lenscope.model.load import assets_dir, fingerprint
from lenscope.model.transformer import HookedTransformer

KIND = "tuned_lens"
SCHEMA_VERSION = 1
TENSORS = "translators.safetensors"


class TunedLens(nn.Module):
    """Affine translators for the boundaries embed, L0.post, ..., L{n-2}.post of one model."""

    def __init__(
        self,
        n_layers: int,
        d_model: int,
        model_fingerprint: str = "",
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.d_model = d_model
        self.model_fingerprint = model_fingerprint
        self.weight = nn.Parameter(torch.zeros(n_layers, d_model, d_model, device=device))
        self.bias = nn.Parameter(torch.zeros(n_layers, d_model, device=device))

    @classmethod
    def for_model(cls, model: HookedTransformer) -> TunedLens:
        """An identity-initialised tuned lens for `model` (equal to the logit lens)."""
        return cls(model.cfg.n_layers, model.cfg.d_model, fingerprint(model), model.device)

    def translate_layer(self, blocks: int, resid: Tensor) -> Tensor:
        """The residual after `blocks` blocks, translated (identity after the last block)."""
        if blocks >= self.n_layers:
            return resid
        w, b = self.weight[blocks], self.bias[blocks]
        return resid + linear(resid, w.to(resid.dtype), b.to(resid.dtype))

    def translate(self, bound: Boundary, resid: Tensor) -> Tensor:
        if bound.sublayer:
            raise InputError("a tuned lens has translators at block boundaries only")
        return self.translate_layer(bound.blocks, resid)

    def check_model(self, model: HookedTransformer) -> None:
        """`ArtifactError` unless this lens was made for `model` (shape and fingerprint)."""
        cfg = model.cfg
        if (cfg.n_layers, cfg.d_model) != (self.n_layers, self.d_model):
            raise ArtifactError(
                f"this tuned lens is for {self.n_layers} layers of width {self.d_model}, but "
                f"{cfg.name} has {cfg.n_layers} of width {cfg.d_model}; train one for it"
            )
        if self.model_fingerprint and self.model_fingerprint != fingerprint(model):
            raise ArtifactError(
                f"this tuned lens was trained on another model (fingerprint "
                f"{self.model_fingerprint}, {cfg.name} is {fingerprint(model)}); retrain it with "
                f"`lenscope lens train-tuned {cfg.name}`"
            )


def shipped_lenses_dir() -> Path:
    return assets_dir() / "lenses"


def trained_lenses_dir() -> Path:
    return lenscope_home() / "lenses"


def default_tuned_path(model: HookedTransformer) -> Path:
    """Where `train-tuned` saves by default: LENSCOPE_HOME/lenses/<model name>-tuned."""
    return trained_lenses_dir() / f"{model.cfg.name}-tuned"


def _fingerprint_of(path: Path) -> str:
    return str(read_manifest(path, KIND, SCHEMA_VERSION).provenance.get("model_fingerprint", ""))


def find_tuned_lens(model: HookedTransformer) -> Path | None:
    """The first `<model>-tuned` (trained, then shipped) whose fingerprint is the model's."""
    want = fingerprint(model)
    for root in (trained_lenses_dir(), shipped_lenses_dir()):
        d = root / f"{model.cfg.name}-tuned"
        if d.is_dir() and _fingerprint_of(d) in ("", want):
            return d
    return None


def resolve_tuned_path(
    name_or_path: str | os.PathLike[str], model: HookedTransformer | None = None
) -> Path:
    """A tuned lens directory from a path, a bare name, or "auto" (needs `model`)."""
    s = str(name_or_path)
    if s == "auto":
        if model is None:
            raise InputError("'auto' picks the tuned lens of a model: pass the model")
        found = find_tuned_lens(model)
        if found is not None:
            return found
        name = f"{model.cfg.name}-tuned"
        raise InputError(
            f"no tuned lens for {model.cfg.name} ({fingerprint(model)}): none named {name!r} "
            f"for it in {trained_lenses_dir()} or {shipped_lenses_dir()}; train one with "
            f"`lenscope lens train-tuned {model.cfg.name}`"
        )
    p = Path(s).expanduser()
    if p.is_dir():
        return p
    if "/" not in s and os.sep not in s:
        for root in (trained_lenses_dir(), shipped_lenses_dir()):
            if (root / s).is_dir():
                return root / s
    raise InputError(
        f"no tuned lens {s!r}: not a directory, nor a name in {trained_lenses_dir()} or "
        f"{shipped_lenses_dir()}"
    )


def save_tuned_lens(
    lens: TunedLens,
    dest: Path | str,
    model_name: str,
    provenance: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> Path:
    """Write the lens as an artifact directory (atomically); return its path."""
    manifest = Manifest(
        kind=KIND,
        schema_version=SCHEMA_VERSION,
        provenance={
            "model": model_name,
            "model_fingerprint": lens.model_fingerprint,
            **(provenance or {}),
        },
        data={"n_layers": lens.n_layers, "d_model": lens.d_model, **(data or {})},
    )
    with writing_artifact(dest, manifest) as tmp:
        save_file(
            {
                "weight": lens.weight.detach().cpu().float().contiguous(),
                "bias": lens.bias.detach().cpu().float().contiguous(),
            },
            str(tmp / TENSORS),
        )
    return Path(dest)


def load_tuned_lens(
    name_or_path: str | os.PathLike[str],
    model: HookedTransformer | None = None,
    device: str | torch.device | None = None,
) -> TunedLens:
    """Open a tuned lens by path, name (`mini-tuned`) or "auto"; with `model`, check it
    belongs to that model (shape and fingerprint). It is put on `device` (anything
    `lenscope.device.resolve_device` takes), by default the model's (the CPU without one)."""
    dev = resolve_device(device) if device is not None else (model.device if model else None)
    p = resolve_tuned_path(name_or_path, model)
    m = read_manifest(p, KIND, SCHEMA_VERSION)
    try:
        n, d = int(m.data["n_layers"]), int(m.data["d_model"])
    except (KeyError, TypeError, ValueError):
        raise ArtifactError(f"{p}: manifest data lacks integer n_layers/d_model") from None
    f = p / TENSORS
    if not f.is_file():
        raise ArtifactError(f"{p} has no {TENSORS}; the tuned lens is incomplete, retrain it")
    try:
        tensors = load_file(str(f))
    except (SafetensorError, OSError) as e:
        raise ArtifactError(f"{f} is not a readable safetensors file ({e}); retrain it") from None
    want = {"weight": (n, d, d), "bias": (n, d)}
    for key, shape in want.items():
        got = tuple(tensors[key].shape) if key in tensors else None
        if got != shape:
            raise ArtifactError(f"{f}: {key} has shape {got}, the manifest says {shape}")
    lens = TunedLens(n, d, str(m.provenance.get("model_fingerprint", "")), dev or "cpu")
    with torch.no_grad():
        lens.weight.copy_(tensors["weight"])
        lens.bias.copy_(tensors["bias"])
    if model is not None:
        lens.check_model(model)
    return lens


def default_tuned_lens(model: HookedTransformer) -> TunedLens | None:
    """The model's own tuned lens (shipped or trained, see `find_tuned_lens`), or None."""
    path = find_tuned_lens(model)
    return None if path is None else load_tuned_lens(path, model)
