"""Gemma Scope's layout: one `params.npz` per SAE, no config.

    params.npz: W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_enc [d_sae], b_dec [d_in], threshold [d_sae]
    latents = JumpReLU(x @ W_enc + b_enc)   (f = pre where pre > threshold, else 0)
    recon   = latents @ W_dec + b_dec

b_dec is not subtracted before encoding (SAELens: `apply_b_dec_to_input=False`); lenscope's SAEs
subtract it, so the import folds it into the latent bias: b_enc' = b_enc + b_dec @ W_enc.

The files carry no hook. It comes from the user (`hook_name`, a full name or a site such as
`resid_post` completed by the folder's layer), else from the folder convention of the released
repositories: `gemma-scope-<model>-<res|mlp|att>/layer_{l}/width_{w}/average_l0_{n}/params.npz`
(res -> hook_resid_post, mlp -> hook_mlp_out, att -> attn.hook_z). `width_{w}` is checked
against the tensors.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lenscope.errors import ArtifactError, InputError
from lenscope.sae.config import SAEConfig
from lenscope.sae.model import SparseAutoencoder, assign_tensors

PARAMS = "params.npz"
GEMMA_SCOPE_TENSORS = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")
_SITES = {"res": "hook_resid_post", "mlp": "hook_mlp_out", "att": "attn.hook_z"}
_LAYER = re.compile(r"^layer_(\d+)$")
_WIDTH = re.compile(r"^width_(\d+)([km]?)$")
_REPO_SITE = re.compile(r"gemma-scope-[^/]*?-(res|mlp|att)(?:[-/]|$)")


def read_npz(f: Path) -> dict[str, Tensor]:
    """The arrays of an `.npz` file as float32 tensors (no pickles)."""
    try:
        with np.load(f, allow_pickle=False) as z:
            return {k: torch.from_numpy(np.asarray(z[k], dtype=np.float32)) for k in z.files}
    except FileNotFoundError:
        raise ArtifactError(f"{f} is missing") from None
    except (OSError, ValueError, zipfile.BadZipFile, KeyError) as e:
        raise ArtifactError(f"cannot read {f}: {e}") from None


def params_file(path: Path) -> Path:
    return path / PARAMS if path.is_dir() else path


def folder_layer(path: Path) -> int | None:
    """The layer named by a `layer_{l}` folder on the path, if any."""
    for part in reversed(path.resolve().parts):
        if m := _LAYER.match(part):
            return int(m.group(1))
    return None


def folder_width(path: Path) -> int | None:
    """The width named by a `width_{w}` folder (16k = 16384, 1m = 1048576), if any."""
    for part in reversed(path.resolve().parts):
        if m := _WIDTH.match(part):
            return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2)]
    return None


def gemmascope_hook(path: Path, hook_name: str | None) -> str:
    """The hook a Gemma Scope SAE reads: `hook_name` (completed by the folder's layer when it
    names only a site), else the site of a `gemma-scope-*-res|mlp|att` folder on the path."""
    layer = folder_layer(path)
    if hook_name:
        if hook_name.startswith("blocks.") or hook_name.startswith("hook_embed"):
            return hook_name
        site = (
            hook_name if hook_name.startswith(("hook_", "attn.", "mlp.")) else f"hook_{hook_name}"
        )
        if layer is None:
            raise InputError(
                f"{path}: hook {hook_name!r} names no layer and no layer_{{l}} folder is on the "
                "path; pass a full hook name such as blocks.3.hook_resid_post"
            )
        return f"blocks.{layer}.{site}"
    m = _REPO_SITE.search(path.resolve().as_posix())
    if m is None or layer is None:
        raise InputError(
            f"{path}: Gemma Scope files do not say which hook they read; pass --hook "
            "(e.g. blocks.3.hook_resid_post, or resid_post inside a layer_{l} folder)"
        )
    return f"blocks.{layer}.{_SITES[m.group(1)]}"


def import_gemmascope(
    path: Path, hook_name: str | None = None, model_name: str = "", **_: Any
) -> SparseAutoencoder:
    """A Gemma Scope JumpReLU SAE (a `params.npz` file or its folder) as a lenscope SAE."""
    f = params_file(path)
    sd = read_npz(f)
    missing = [n for n in GEMMA_SCOPE_TENSORS if n not in sd]
    if missing:
        raise ArtifactError(f"{f}: not a Gemma Scope SAE: missing tensor(s) {', '.join(missing)}")
    if sd["W_enc"].ndim != 2:
        raise ArtifactError(f"{f}: W_enc must be [d_in, d_sae], got {tuple(sd['W_enc'].shape)}")
    d_in, d_sae = (int(n) for n in sd["W_enc"].shape)
    width = folder_width(f.parent)
    if width is not None and width != d_sae:
        raise ArtifactError(f"{f}: the folder says width {width} but W_enc has {d_sae} latents")
    cfg = SAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        architecture="jumprelu",
        hook_name=gemmascope_hook(f.parent, hook_name),
        model_name=model_name,
    )
    sae = SparseAutoencoder(cfg)
    assign_tensors(sae, fold_b_dec_into_b_enc(sd, str(f)), str(f))
    return sae.eval()


def fold_b_dec_into_b_enc(sd: dict[str, Tensor], where: str) -> dict[str, Tensor]:
    """Tensors of an SAE that encodes x (not x - b_dec) for one that subtracts b_dec first."""
    W, b_enc, b_dec = sd["W_enc"], sd["b_enc"], sd["b_dec"]
    if W.ndim != 2 or b_dec.shape != (W.shape[0],) or b_enc.shape != (W.shape[1],):
        raise ArtifactError(
            f"{where}: W_enc {tuple(W.shape)}, b_enc {tuple(b_enc.shape)} and b_dec "
            f"{tuple(b_dec.shape)} do not fit together"
        )
    folded = (b_enc.double() + b_dec.double() @ W.double()).to(b_enc.dtype)
    return {**sd, "b_enc": folded}
