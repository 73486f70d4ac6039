"""Other libraries' SAE files: SAELens (export, import), OpenAI's released state dicts and
sparsify's layout (import; export for TopK).

- SAELens: a directory with `cfg.json` and `sae_weights.safetensors` (W_enc [d_in, d_sae], b_enc,
  W_dec [d_sae, d_in], b_dec, and `threshold` for jumprelu). TopK -> "topk", BatchTopK and JumpReLU
  -> "jumprelu" (the threshold vector), ReLU -> "standard"; our input normalisation is SAELens'
  "layer_norm" (same maths: centre, divide by unbiased std + 1e-5, undo after decoding).
- OpenAI (openai/sparse_autoencoder): a state dict with pre_bias [d], latent_bias [n],
  encoder.weight [n, d], decoder.weight [d, n], activation "TopK"/"ReLU", activation_state_dict
  {"k": k}; TopK autoencoders normalise their input (their `from_state_dict` convention).
  Read from a local .pt (tensors and plain values only: `weights_only=True`) or .safetensors.
- sparsify (EleutherAI): `cfg.json` (d_in, k, num_latents or expansion_factor, ...) and
  `sae.safetensors` (encoder.weight [n, d], encoder.bias, W_dec [n, d], b_dec), one folder per
  hookpoint, named by it (`layers.6` -> blocks.6.hook_resid_post; see `sparsify_hook`).
- Gemma Scope: `params.npz` (JumpReLU; see `lenscope.sae.gemmascope`).
- Llama Scope: `hyperparams.json` + `checkpoints/final.safetensors` (JumpReLU or TopK with
  dataset-norm scaling, folded into the weights; see `lenscope.sae.llamascope`).
Transcoders (SAELens' transcoder cfg.json, circuit-tracer's config.yaml) are not SAEs: they load
with `lenscope.sae.transcoder_formats.load_transcoders`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from lenscope.errors import ArtifactError, InputError
from lenscope.sae.config import SAEConfig
from lenscope.sae.model import SparseAutoencoder, assign_tensors

FORMATS = ("saelens", "openai", "sparsify", "gemmascope", "llamascope")
LAYOUTS = (
    "SAELens (cfg.json + sae_weights.safetensors), sparsify (cfg.json + sae.safetensors), "
    "Gemma Scope (params.npz), Llama Scope (hyperparams.json + checkpoints/final.safetensors), "
    "OpenAI (.pt/.safetensors file), circuit-tracer transcoders (config.yaml)"
)
SAELENS_FORMAT_VERSION = "6.0.0"


def _read_json(f: Path) -> dict[str, Any]:
    try:
        d = json.loads(f.read_text("utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{f} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{f} is not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise ArtifactError(f"{f} must hold a JSON object")
    return d


def _read_tensors(f: Path) -> dict[str, Tensor]:
    try:
        return load_file(str(f))
    except (SafetensorError, FileNotFoundError, OSError) as e:
        raise ArtifactError(f"cannot read {f}: {e}") from None


def is_foreign_sae(path: Path) -> bool:
    """Whether `path` is another library's SAE (a file, or a folder without a lenscope manifest)."""
    if path.is_file():
        return path.suffix in (".npz", ".pt", ".pth", ".safetensors")
    names = ("sae_weights.safetensors", "sae.safetensors", "params.npz", "hyperparams.json")
    return not (path / "manifest.json").is_file() and any((path / n).is_file() for n in names)


def detect_format(path: Path) -> str:
    from lenscope.sae.transcoder_formats import transcoder_layout

    if (layout := transcoder_layout(path)) is not None:
        raise ArtifactError(
            f"{path} holds {layout} transcoders, not an SAE; load them with "
            "lenscope.sae.load_transcoders"
        )
    if path.is_dir():
        if (path / "hyperparams.json").is_file():
            return "llamascope"
        if (path / "sae_weights.safetensors").is_file():
            return "saelens"
        if (path / "sae.safetensors").is_file():
            return "sparsify"
        if (path / "params.npz").is_file():
            return "gemmascope"
        raise ArtifactError(
            f"{path} holds neither SAELens nor sparsify SAE files, nor any known layout: {LAYOUTS}"
        )
    if path.suffix == ".npz":
        return "gemmascope"
    if path.suffix in (".pt", ".pth", ".safetensors"):
        return "openai"
    raise ArtifactError(f"cannot tell the SAE format of {path}; pass --format")


def import_sae(path: Path | str, fmt: str | None = None, **kw: Any) -> SparseAutoencoder:
    """Read an SAE in another library's format (auto-detected when fmt is None)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p} does not exist")
    fmt = fmt or detect_format(p)
    if fmt == "saelens":
        return import_saelens(p, **kw)
    if fmt == "openai":
        return import_openai(p, **kw)
    if fmt == "sparsify":
        return import_sparsify(p, **kw)
    if fmt == "gemmascope":
        from lenscope.sae.gemmascope import import_gemmascope

        return import_gemmascope(p, **kw)
    if fmt == "llamascope":
        from lenscope.sae.llamascope import load_llamascope

        sae = load_llamascope(p, hook_in=kw.get("hook_name"))
        if not isinstance(sae, SparseAutoencoder):
            raise ArtifactError(
                f"{p} holds a Llama Scope transcoder; load it with load_transcoders"
            )
        return sae
    raise InputError(f"unknown SAE format {fmt!r}; choose one of {', '.join(FORMATS)}")


# ---- SAELens -------------------------------------------------------------------------------------
def export_saelens(
    sae: SparseAutoencoder, dest: Path | str, context_size: int | None = None
) -> Path:
    """Write `cfg.json` + `sae_weights.safetensors` that `sae_lens.SAE.load_from_disk` reads."""
    cfg = sae.cfg
    arch = sae.arch.saelens_name
    hook = cfg.hook_name
    out: dict[str, Any] = {
        "architecture": arch,
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "layer_norm" if cfg.normalize else "none",
        "reshape_activations": "hook_z" if hook.endswith("hook_z") else "none",
        "metadata": {
            "sae_lens_version": SAELENS_FORMAT_VERSION,
            "sae_lens_training_version": SAELENS_FORMAT_VERSION,
            "model_name": cfg.model_name,
            "hook_name": hook,
            "hook_head_index": None,
            "context_size": context_size,
            "prepend_bos": False,
            "exported_by": "lenscope",
            "lenscope_model_fingerprint": cfg.model_fingerprint,
            "lenscope_architecture": cfg.architecture,
        },
    }
    if arch == "topk":
        out["k"] = cfg.k
        out["rescale_acts_by_decoder_norm"] = False
    names = ["W_enc", "b_enc", "W_dec", "b_dec"] + (["threshold"] if arch == "jumprelu" else [])
    sd = {n: getattr(sae, n).detach().to("cpu", torch.float32).contiguous() for n in names}
    d = Path(dest)
    d.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(d / "sae_weights.safetensors"))
    (d / "cfg.json").write_text(json.dumps(out, indent=2) + "\n", "utf-8")
    return d


def import_saelens(path: Path, hook_name: str | None = None, **_: Any) -> SparseAutoencoder:
    c = _read_json(path / "cfg.json")
    sd = _read_tensors(path / "sae_weights.safetensors")
    meta = c.get("metadata") if isinstance(c.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    arch = c.get("architecture", "standard")
    norm = c.get("normalize_activations", "none")
    if norm not in ("none", "layer_norm", "expected_average_only_in"):
        raise ArtifactError(f"{path}: SAELens normalize_activations={norm!r} is not supported")
    if str(arch).endswith("transcoder"):
        raise ArtifactError(
            f"{path} holds a SAELens {arch}, not an SAE; load it with lenscope.sae.load_transcoders"
        )
    ours = {"topk": "topk", "standard": "relu", "jumprelu": "jumprelu"}.get(str(arch))
    if ours is None:
        raise ArtifactError(
            f"{path}: SAELens architecture {arch!r} is not supported (topk, standard, jumprelu)"
        )
    k = c.get("k") if ours == "topk" else None
    if ours == "topk" and k is None:
        k = (c.get("activation_fn_kwargs") or {}).get("k")
    try:
        cfg = SAEConfig(
            d_in=int(c["d_in"]),
            d_sae=int(c["d_sae"]),
            architecture=ours,
            k=int(k) if k is not None else None,
            normalize=norm == "layer_norm",
            hook_name=hook_name or str(meta.get("hook_name") or c.get("hook_name") or ""),
            model_name=str(meta.get("model_name") or c.get("model_name") or ""),
            model_fingerprint=meta.get("lenscope_model_fingerprint"),
        )
    except (KeyError, TypeError, ValueError, InputError) as e:
        raise ArtifactError(f"{path}/cfg.json: invalid SAELens config ({e})") from None
    if ours == "topk" and c.get("rescale_acts_by_decoder_norm", False):
        norms = sd["W_dec"].norm(dim=-1).clamp_min(1e-8)  # fold: equal latents, plain TopK after
        sd["W_enc"] = sd["W_enc"] * norms
        sd["b_enc"] = sd["b_enc"] * norms
        sd["W_dec"] = sd["W_dec"] / norms[:, None]
    if c.get("apply_b_dec_to_input", True) is False and {"W_enc", "b_enc", "b_dec"} <= set(sd):
        from lenscope.sae.gemmascope import fold_b_dec_into_b_enc

        sd = fold_b_dec_into_b_enc(sd, str(path))  # they encode x, we encode x - b_dec
    sae = SparseAutoencoder(cfg)
    assign_tensors(sae, sd, str(path))
    return sae.eval()


# ---- OpenAI --------------------------------------------------------------------------------------
def import_openai(
    path: Path,
    k: int | None = None,
    normalize: bool | None = None,
    hook_name: str | None = None,
    **_: Any,
) -> SparseAutoencoder:
    if path.suffix == ".safetensors":
        raw: dict[str, Any] = dict(_read_tensors(path))
    else:
        try:
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several types for foreign or corrupt files
            raise ArtifactError(
                f"{path} is not a readable OpenAI SAE state dict: {str(e).splitlines()[0]}"
            ) from None
    if not isinstance(raw, dict):
        raise ArtifactError(f"{path} does not hold a state dict")
    need = ("pre_bias", "latent_bias", "encoder.weight", "decoder.weight")
    missing = [n for n in need if n not in raw]
    if missing:
        raise ArtifactError(f"{path} is not an OpenAI SAE state dict: missing {', '.join(missing)}")
    act = raw.get("activation", "TopK" if k is not None else "ReLU")
    act_sd = raw.get("activation_state_dict") or {}
    if act == "TopK":
        k = k if k is not None else act_sd.get("k") if isinstance(act_sd, dict) else None
        if k is None:
            raise ArtifactError(f"{path}: a TopK autoencoder but no k; pass --k")
    elif act != "ReLU":
        raise ArtifactError(f"{path}: activation {act!r} is not supported (TopK, ReLU)")
    enc: Tensor = raw["encoder.weight"]
    n, d = enc.shape
    cfg = SAEConfig(
        d_in=int(d),
        d_sae=int(n),
        architecture="topk" if act == "TopK" else "relu",
        k=int(k) if act == "TopK" and k is not None else None,
        normalize=(act == "TopK") if normalize is None else normalize,
        hook_name=hook_name or "",
    )
    sd = {
        "W_enc": enc.t(),
        "b_enc": raw["latent_bias"],
        "W_dec": raw["decoder.weight"].t(),
        "b_dec": raw["pre_bias"],
    }
    sae = SparseAutoencoder(cfg)
    assign_tensors(sae, sd, str(path))
    return sae.eval()


# ---- sparsify ------------------------------------------------------------------------------------
_SPARSIFY_HOOK = re.compile(r"^(?:.*\.)?(?:layers|h)\.(\d+)(?:\.(mlp|self_attn|attention|attn))?$")


def sparsify_hook(folder: str) -> str:
    """The hook of a sparsify folder named by its hookpoint (a module name): `layers.6` (a
    layer's output) -> blocks.6.hook_resid_post, `layers.6.mlp` -> blocks.6.hook_mlp_out,
    `layers.6.self_attn` -> blocks.6.hook_attn_out; "" for other names."""
    m = _SPARSIFY_HOOK.match(folder)
    if m is None:
        return ""
    site = "hook_resid_post" if m.group(2) is None else "hook_mlp_out"
    if m.group(2) not in (None, "mlp"):
        site = "hook_attn_out"
    return f"blocks.{m.group(1)}.{site}"


def import_sparsify(path: Path, hook_name: str | None = None, **_: Any) -> SparseAutoencoder:
    c = _read_json(path / "cfg.json")
    sd = _read_tensors(path / "sae.safetensors")
    if c.get("activation", "topk") != "topk":
        raise ArtifactError(f"{path}: sparsify activation {c.get('activation')!r} is not supported")
    if c.get("transcode") or c.get("skip_connection") or "W_skip" in sd:
        raise ArtifactError(f"{path}: transcoders and skip connections are not supported")
    try:
        d_in = int(c["d_in"])
        n = int(c.get("num_latents") or d_in * int(c["expansion_factor"]))
        cfg = SAEConfig(
            d_in=d_in,
            d_sae=n,
            architecture="topk",
            k=int(c["k"]),
            hook_name=hook_name or sparsify_hook(path.resolve().name),
        )
        ours = {
            "W_enc": sd["encoder.weight"].t(),
            "b_enc": sd["encoder.bias"],
            "W_dec": sd["W_dec"],
            "b_dec": sd["b_dec"],
        }
    except (KeyError, TypeError, ValueError, InputError) as e:
        raise ArtifactError(f"{path}: not a sparsify SAE ({e})") from None
    sae = SparseAutoencoder(cfg)
    assign_tensors(sae, ours, str(path))
    return sae.eval()


def export_sparsify(sae: SparseAutoencoder, dest: Path | str) -> Path:
    cfg = sae.cfg
    if cfg.architecture != "topk" or cfg.normalize:
        raise InputError("sparsify holds plain TopK SAEs only (no input normalisation)")
    assert cfg.k is not None
    d = Path(dest)
    d.mkdir(parents=True, exist_ok=True)
    sd = {
        "encoder.weight": sae.W_enc.detach().t().contiguous().float(),
        "encoder.bias": sae.b_enc.detach().float().contiguous(),
        "W_dec": sae.W_dec.detach().float().contiguous(),
        "b_dec": sae.b_dec.detach().float().contiguous(),
    }
    save_file(sd, str(d / "sae.safetensors"))
    meta = {
        "activation": "topk",
        "expansion_factor": max(1, cfg.d_sae // cfg.d_in),
        "normalize_decoder": True,
        "num_latents": cfg.d_sae,
        "k": cfg.k,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": False,
        "d_in": cfg.d_in,
    }
    (d / "cfg.json").write_text(json.dumps(meta, indent=2) + "\n", "utf-8")
    return d
