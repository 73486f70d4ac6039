"""Llama Scope's layout (OpenMOSS' lm_saes): one folder per dictionary,

    hyperparams.json            d_model, d_sae, hook_point_in, hook_point_out (TransformerLens
                                names), act_fn (jumprelu | topk | relu), jump_relu_threshold (one
                                scalar), top_k, norm_activation ("dataset-wise" or "inference"),
                                dataset_average_activation_norm {"in": n_in, "out": n_out},
                                sparsity_include_decoder_norm, use_decoder_bias,
                                apply_decoder_bias_to_pre_encoder
    checkpoints/final.safetensors   encoder.weight [d_sae, d_in], encoder.bias [d_sae],
                                decoder.weight [d_out, d_sae], decoder.bias [d_out], and
                                optionally log_jumprelu_threshold [d_sae] (per-latent)

Its forward, with s_in = sqrt(d_model) / n_in and s_out = sqrt(d_model) / n_out ("dataset-wise";
both 1 for "inference"):
    pre     = (x * s_in [- b_dec if apply_decoder_bias_to_pre_encoder]) @ W_enc^T + b_enc
    score   = pre * |W_dec[:, j]|      (with sparsity_include_decoder_norm; else pre)
    f       = pre where score > threshold (jumprelu), where score is among the k largest
              positive (topk), where score > 0 (relu); else 0
    out     = (f @ W_dec^T + b_dec) / s_out
The import folds the scalings into the weights, so the latents are exactly Llama Scope's:
W_enc' = s_in W_enc^T, threshold'_j = threshold / |W_dec[:, j]|, W_dec' = W_dec^T / s_out,
b_dec' = b_dec / s_out. A folder whose hooks are equal is an SAE (R, A, M sites: lenscope's
`SparseAutoencoder`, b_dec folded into b_enc as for Gemma Scope); one reading
`blocks.L.ln2.hook_normalized` and writing `blocks.L.hook_mlp_out` (the TC site) a `Transcoder`.
A TopK dictionary whose decoder columns are not unit-norm ranks by score, which a plain TopK
cannot: its latents are rescaled to score (f_j |W_dec[:, j]|, decoder rows divided back).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from lenscope.errors import ArtifactError, InputError
from lenscope.sae.config import SAEConfig
from lenscope.sae.gemmascope import fold_b_dec_into_b_enc
from lenscope.sae.model import SparseAutoencoder, assign_tensors
from lenscope.sae.transcoder import Transcoder, TranscoderConfig

HYPERPARAMS = "hyperparams.json"
WEIGHTS = ("checkpoints/final.safetensors", "checkpoints/pruned.safetensors")
ACTIVATIONS = {"jumprelu": "jumprelu", "topk": "topk", "relu": "relu"}


def is_llamascope(path: Path) -> bool:
    return path.is_dir() and (path / HYPERPARAMS).is_file()


def read_hyperparams(path: Path) -> dict[str, Any]:
    try:
        c = json.loads((path / HYPERPARAMS).read_text("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ArtifactError(f"cannot read {path / HYPERPARAMS}: {e}") from None
    if not isinstance(c, dict):
        raise ArtifactError(f"{path / HYPERPARAMS} must hold a JSON object")
    return c


def llamascope_hooks(path: Path) -> tuple[str, str]:
    """(hook_point_in, hook_point_out) of a Llama Scope folder."""
    c = read_hyperparams(path)
    hin, hout = c.get("hook_point_in"), c.get("hook_point_out", c.get("hook_point_in"))
    if not isinstance(hin, str) or not isinstance(hout, str) or not hin:
        raise ArtifactError(f"{path / HYPERPARAMS}: hook_point_in / hook_point_out are missing")
    return hin, hout


def load_llamascope(
    path: Path | str, *, hook_in: str | None = None, hook_out: str | None = None
) -> SparseAutoencoder | Transcoder:
    """A Llama Scope SAE (hooks equal) or transcoder (see the module), in float32."""
    p = Path(path)
    if not is_llamascope(p):
        raise ArtifactError(f"{p} holds no {HYPERPARAMS}: not a Llama Scope dictionary")
    c = read_hyperparams(p)
    file_in, file_out = llamascope_hooks(p)
    hin, hout = hook_in or file_in, hook_out or (hook_in if file_in == file_out else file_out)
    hout = hout or hin
    sd = _weights(p)
    act = ACTIVATIONS.get(str(c.get("act_fn", "jumprelu")).lower())
    if act is None:
        raise ArtifactError(
            f"{p}: act_fn {c.get('act_fn')!r} is not supported ({', '.join(ACTIVATIONS)})"
        )
    if c.get("use_glu_encoder"):
        raise ArtifactError(f"{p}: GLU encoders are not supported")
    try:
        d_model = int(c["d_model"])
        W_enc = sd["encoder.weight"].double()  # [d_sae, d_in]
        b_enc = sd["encoder.bias"].double()
        W_dec = sd["decoder.weight"].double()  # [d_out, d_sae]
    except KeyError as e:
        raise ArtifactError(f"{p}: missing {e} (hyperparams or tensors)") from None
    d_sae, d_in = (int(n) for n in W_enc.shape)
    if W_dec.shape[1] != d_sae or b_enc.shape != (d_sae,):
        raise ArtifactError(
            f"{p}: encoder.weight {tuple(W_enc.shape)}, encoder.bias {tuple(b_enc.shape)} and "
            f"decoder.weight {tuple(W_dec.shape)} do not fit together"
        )
    d_out = int(W_dec.shape[0])
    b_dec = sd.get("decoder.bias")
    use_bias = c.get("use_decoder_bias", True) and b_dec is not None
    b_dec = b_dec.double() if use_bias and b_dec is not None else torch.zeros(d_out).double()
    if b_dec.shape != (d_out,):
        raise ArtifactError(f"{p}: decoder.bias {tuple(b_dec.shape)} does not fit d_out {d_out}")
    if int(c.get("d_sae", d_sae)) != d_sae:
        raise ArtifactError(f"{p}: hyperparams say d_sae {c.get('d_sae')}, tensors {d_sae}")
    s_in, s_out = _scales(c, d_model, p)
    if c.get("apply_decoder_bias_to_pre_encoder", False):
        b_enc = b_enc - b_dec @ W_enc.t()  # encodes x * s_in - b_dec
    dec_norm = W_dec.norm(dim=0) if c.get("sparsity_include_decoder_norm", False) else None
    enc = W_enc.t() * s_in  # [d_in, d_sae]
    dec = W_dec.t() / s_out  # [d_sae, d_out]
    threshold = _threshold(c, sd, d_sae, act, p)
    k = int(c["top_k"]) if act == "topk" else None
    if dec_norm is not None:
        if act == "jumprelu":
            threshold = threshold / dec_norm.clamp_min(1e-30)
        elif act == "topk":  # rank by score: latents become pre * |W_dec[:, j]|
            enc, b_enc, dec = (
                enc * dec_norm,
                b_enc * dec_norm,
                dec / dec_norm.clamp_min(1e-30)[:, None],
            )
    weights = {"W_enc": enc, "b_enc": b_enc, "W_dec": dec, "b_dec": b_dec / s_out}
    if act == "jumprelu":
        weights["threshold"] = threshold
    model_name = str(c.get("model_name") or "")
    if hin == hout:
        return _sae(weights, d_in, d_sae, act, k, hin, model_name, str(p))
    try:
        cfg = TranscoderConfig(
            d_in=d_in, d_sae=d_sae, d_out=d_out, activation=act, hook_in=hin, hook_out=hout,
            model_name=model_name, k=k,
        )  # fmt: skip
    except InputError as e:
        raise ArtifactError(f"{p}: {e}") from None
    t = Transcoder(cfg)
    with torch.no_grad():
        for name, w in weights.items():
            if not bool(torch.isfinite(w).all()):
                raise ArtifactError(f"{p}: {name} contains NaN or infinite values")
            getattr(t, name).copy_(w.to(torch.float32))
    return t.eval()


def _sae(
    weights: dict[str, Tensor],
    d_in: int,
    d_sae: int,
    act: str,
    k: int | None,
    hook: str,
    model_name: str,
    where: str,
) -> SparseAutoencoder:
    if weights["W_dec"].shape[1] != d_in:
        raise ArtifactError(f"{where}: an SAE must write as many dimensions as it reads")
    try:
        cfg = SAEConfig(
            d_in=d_in, d_sae=d_sae, architecture=act, k=k, hook_name=hook, model_name=model_name
        )
    except InputError as e:
        raise ArtifactError(f"{where}: {e}") from None
    sd = fold_b_dec_into_b_enc(weights, where)  # lenscope's SAEs encode x - b_dec
    sae = SparseAutoencoder(cfg)
    assign_tensors(sae, {n: t.float() for n, t in sd.items()}, where)
    return sae.eval()


def _weights(p: Path) -> dict[str, Tensor]:
    for name in WEIGHTS:
        if (p / name).is_file():
            try:
                return load_file(str(p / name))
            except (SafetensorError, OSError) as e:
                raise ArtifactError(f"cannot read {p / name}: {e}") from None
    raise ArtifactError(f"{p}: no {' or '.join(WEIGHTS)}")


def _scales(c: dict[str, Any], d_model: int, p: Path) -> tuple[float, float]:
    mode = c.get("norm_activation", "dataset-wise")
    if mode == "inference":
        return 1.0, 1.0
    if mode != "dataset-wise":
        raise ArtifactError(f"{p}: norm_activation {mode!r} is not supported (dataset-wise)")
    norms = c.get("dataset_average_activation_norm")
    if not isinstance(norms, dict) or "in" not in norms:
        raise ArtifactError(f"{p}: dataset-wise norms need dataset_average_activation_norm.in")
    try:
        n_in, n_out = float(norms["in"]), float(norms.get("out") or norms["in"])
    except (TypeError, ValueError):
        raise ArtifactError(f"{p}: dataset_average_activation_norm must hold numbers") from None
    if not (n_in > 0 and n_out > 0 and math.isfinite(n_in) and math.isfinite(n_out)):
        raise ArtifactError(f"{p}: dataset_average_activation_norm must be positive")
    return math.sqrt(d_model) / n_in, math.sqrt(d_model) / n_out


def _threshold(c: dict[str, Any], sd: dict[str, Tensor], d_sae: int, act: str, p: Path) -> Tensor:
    if act != "jumprelu":
        return torch.zeros(d_sae, dtype=torch.float64)
    if "log_jumprelu_threshold" in sd:
        t = sd["log_jumprelu_threshold"].double().exp()
        if t.shape != (d_sae,):
            raise ArtifactError(f"{p}: log_jumprelu_threshold must be [d_sae]")
        return t
    if "jump_relu_threshold" not in c:
        raise ArtifactError(f"{p}: a jumprelu dictionary needs jump_relu_threshold")
    return torch.full((d_sae,), float(c["jump_relu_threshold"]), dtype=torch.float64)
