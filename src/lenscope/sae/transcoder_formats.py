"""Transcoders in the layouts people publish, loaded as lenscope `Transcoder`s.

- SAELens: a folder with `cfg.json` (architecture "transcoder" or "jumprelu_transcoder", d_in,
  d_sae, d_out, hook_name and hook_name_out, at the top level or under "metadata") and
  `sae_weights.safetensors` (W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_out], b_dec [d_out],
  and threshold for JumpReLU).
- circuit-tracer: a `config.yaml` with `model_kind: transcoder_set` (the default), the hooks
  `feature_input_hook` / `feature_output_hook` (relative to `blocks.{l}.`) and a list
  `transcoders` of {layer, filepath}; each file is either Gemma Scope's `params.npz` (W_enc
  [d_in, d_sae], W_dec [d_sae, d_out], b_enc, b_dec, threshold: JumpReLU) or a safetensors file
  of a ReLU transcoder stored transposed (W_enc [d_sae, d_in], W_dec [d_out, d_sae], b_enc,
  b_dec). Relative paths are relative to the config; `hf://` paths must be downloaded first.
  Input hooks: `hook_resid_mid` and `hook_mlp_in` read `blocks.{l}.hook_resid_mid`; `mlp.hook_in`
  (the MLP's normalised input) needs the model: its ln2 weight and bias are folded into the
  encoder, which then reads `blocks.{l}.ln2.hook_normalized`. Output hooks: `hook_mlp_out`,
  `mlp.hook_out`.
- Llama Scope: `hyperparams.json` whose hook_point_in differs from hook_point_out (the TC
  site: `blocks.L.ln2.hook_normalized` -> `blocks.L.hook_mlp_out`) + `checkpoints/
  final.safetensors` (see `lenscope.sae.llamascope`).
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
from lenscope.model import HookedTransformer
from lenscope.sae.gemmascope import read_npz
from lenscope.sae.transcoder import Transcoder, TranscoderConfig

CONFIGS = ("config.yaml", "config.yml")
SAELENS_ARCHS = {"transcoder": "relu", "jumprelu_transcoder": "jumprelu"}
SAELENS_SKIP_ARCHS = {"skip_transcoder": "relu", "jumprelu_skip_transcoder": "jumprelu"}
TRANSCODER_LAYOUTS = (
    "SAELens (cfg.json with a transcoder architecture + sae_weights.safetensors), "
    "circuit-tracer (config.yaml listing per-layer files), "
    "sparsify (cfg.json with transcode: true + sae.safetensors), "
    "Llama Scope (hyperparams.json with hook_point_in != hook_point_out)"
)
_INPUTS = {"hook_resid_mid": "hook_resid_mid", "hook_mlp_in": "hook_resid_mid"}
_OUTPUTS = {"hook_mlp_out": "hook_mlp_out", "mlp.hook_out": "hook_mlp_out"}
_FOLD_LN2 = "mlp.hook_in"


def transcoder_layout(path: Path) -> str | None:
    """ "circuit-tracer", "SAELens" or None (not a transcoder folder or config)."""
    if path.is_file():
        return "circuit-tracer" if path.suffix in (".yaml", ".yml") else None
    if not path.is_dir():
        return None
    if any((path / n).is_file() for n in CONFIGS):
        return "circuit-tracer"
    if (path / "hyperparams.json").is_file():
        from lenscope.sae.llamascope import llamascope_hooks

        try:
            hin, hout = llamascope_hooks(path)
        except ArtifactError:
            return None
        return "Llama Scope" if hin != hout else None
    cfg = path / "cfg.json"
    if not cfg.is_file():
        return None
    try:
        c = json.loads(cfg.read_text("utf-8"))
        arch, transcode = c.get("architecture"), c.get("transcode")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    if (path / "sae_weights.safetensors").is_file():
        return "SAELens" if isinstance(arch, str) and arch.endswith("transcoder") else None
    if (path / "sae.safetensors").is_file() and transcode is True:
        return "sparsify"
    return None


def load_transcoders(
    path: Path | str,
    *,
    hook_in: str | None = None,
    hook_out: str | None = None,
    model: HookedTransformer | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> list[Transcoder]:
    """Every transcoder at `path` (one per layer), in layer order, on `device` in `dtype`.
    `hook_in` / `hook_out` override what the files say; `model` is needed where the transcoder
    reads the MLP's normalised input (circuit-tracer's `mlp.hook_in`, sparsify)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p} does not exist")
    layout = transcoder_layout(p)
    ts: list[Transcoder] | None = None
    if layout == "circuit-tracer":
        ts = load_circuit_tracer(p, model=model)
    elif layout == "SAELens":
        ts = [load_saelens_transcoder(p, hook_in=hook_in, hook_out=hook_out)]
    elif layout == "sparsify":
        ts = [load_sparsify_transcoder(p, hook_in=hook_in, hook_out=hook_out, model=model)]
    elif layout == "Llama Scope":
        from lenscope.sae.llamascope import load_llamascope

        t = load_llamascope(p, hook_in=hook_in, hook_out=hook_out)
        assert isinstance(t, Transcoder)
        ts = [t]
    if ts is not None:
        return [t.to(device=device, dtype=dtype).eval() for t in ts]
    raise ArtifactError(f"{p} is in no known transcoder layout: {TRANSCODER_LAYOUTS}")


# ---- SAELens ---------------------------------------------------------------------------------
def load_saelens_transcoder(
    path: Path, hook_in: str | None = None, hook_out: str | None = None
) -> Transcoder:
    try:
        c = json.loads((path / "cfg.json").read_text("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ArtifactError(f"cannot read {path / 'cfg.json'}: {e}") from None
    if not isinstance(c, dict):
        raise ArtifactError(f"{path / 'cfg.json'} must hold a JSON object")
    arch = c.get("architecture")
    archs = SAELENS_ARCHS | SAELENS_SKIP_ARCHS
    if arch not in archs:
        raise ArtifactError(
            f"{path}: SAELens architecture {arch!r} is not supported ({', '.join(archs)})"
        )
    if c.get("normalize_activations", "none") != "none":
        raise ArtifactError(f"{path}: transcoders with normalize_activations are not supported")
    meta = c.get("metadata") if isinstance(c.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    hin = hook_in or c.get("hook_name") or meta.get("hook_name")
    hout = hook_out or c.get("hook_name_out") or meta.get("hook_name_out")
    if not hin or not hout:
        raise InputError(f"{path}: the config names no input or output hook; pass both hooks")
    sd = _read_safetensors(path / "sae_weights.safetensors")
    _need(sd, ("W_enc", "b_enc", "W_dec", "b_dec"), path)
    act = _lenscope_activation(archs[arch], meta)
    skip = arch in SAELENS_SKIP_ARCHS
    if skip:
        _need(sd, ("W_skip",), path)
        sd = {**sd, "W_skip": sd["W_skip"].t()}  # SAELens stores [d_out, d_in]
    try:
        cfg = TranscoderConfig(
            d_in=int(c["d_in"]),
            d_sae=int(c["d_sae"]),
            d_out=int(c["d_out"] if "d_out" in c else c["d_in"]),
            activation=act,
            hook_in=str(hin),
            hook_out=str(hout),
            model_name=str(meta.get("model_name") or c.get("model_name") or ""),
            skip=skip,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(f"{path}/cfg.json: invalid SAELens transcoder config ({e})") from None
    return _build(cfg, sd, str(path))


def export_saelens_transcoder(t: Transcoder, dest: Path | str) -> Path:
    """Write `cfg.json` + `sae_weights.safetensors` that `sae_lens.SAE.load_from_disk` reads as
    a (JumpReLU) transcoder and `load_transcoders` reads back."""
    arch = {v: k for k, v in SAELENS_ARCHS.items()}[t.cfg.activation]
    names = ["W_enc", "b_enc", "W_dec", "b_dec"] + (["threshold"] if arch != "transcoder" else [])
    sd = {n: getattr(t, n).detach().to("cpu", torch.float32).contiguous() for n in names}
    cfg = {
        "architecture": arch,
        "d_in": t.cfg.d_in,
        "d_sae": t.cfg.d_sae,
        "d_out": t.cfg.d_out,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "hook_name_out": t.cfg.hook_out,
        "metadata": {
            "hook_name": t.cfg.hook_in,
            "hook_name_out": t.cfg.hook_out,
            "model_name": t.cfg.model_name,
            "exported_by": "lenscope",
        },
    }
    d = Path(dest)
    d.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(d / "sae_weights.safetensors"))
    (d / "cfg.json").write_text(json.dumps(cfg, indent=2) + "\n", "utf-8")
    return d


# ---- sparsify ---------------------------------------------------------------------------------
_SPARSIFY_MLP = re.compile(r"^(?:.*\.)?(?:layers|h)\.(\d+)\.mlp$")


def load_sparsify_transcoder(
    path: Path,
    hook_in: str | None = None,
    hook_out: str | None = None,
    model: HookedTransformer | None = None,
) -> Transcoder:
    try:
        c = json.loads((path / "cfg.json").read_text("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ArtifactError(f"cannot read {path / 'cfg.json'}: {e}") from None
    sd = _read_safetensors(path / "sae.safetensors")
    if c.get("skip_connection") or "W_skip" in sd:
        raise ArtifactError(f"{path}: transcoders with a skip connection are not supported")
    if c.get("activation", "topk") != "topk":
        raise ArtifactError(f"{path}: sparsify activation {c.get('activation')!r} is not supported")
    _need(sd, ("encoder.weight", "encoder.bias", "W_dec", "b_dec"), path)
    m = _SPARSIFY_MLP.match(path.resolve().name)
    layer = int(m.group(1)) if m else None
    if (hook_in is None or hook_out is None) and layer is None:
        raise InputError(
            f"{path}: the folder is not named by an MLP hookpoint (layers.{{l}}.mlp); pass both hooks"
        )
    if hook_in is None and model is None:
        raise InputError(f"{path}: sparsify transcoders read the MLP's input and need the model")
    try:
        d_in = int(c["d_in"])
        cfg = TranscoderConfig(
            d_in=d_in,
            d_sae=int(c.get("num_latents") or d_in * int(c["expansion_factor"])),
            d_out=int(sd["W_dec"].shape[-1]),
            activation="topk",
            hook_in=hook_in or f"blocks.{layer}.mlp_input",
            hook_out=hook_out or f"blocks.{layer}.hook_mlp_out",
            k=int(c["k"]),
        )
    except (KeyError, TypeError, ValueError, InputError) as e:
        raise ArtifactError(f"{path}: not a sparsify transcoder ({e})") from None
    ours = {
        "W_enc": sd["encoder.weight"].t(),
        "b_enc": sd["encoder.bias"],
        "W_dec": sd["W_dec"],
        "b_dec": sd["b_dec"],
    }
    t = _build(cfg, ours, str(path))
    if hook_in is None:
        assert model is not None and layer is not None
        t = _fold_ln2(t, model, layer)
    return t


def export_sparsify_transcoder(
    t: Transcoder, dest: Path | str, model: HookedTransformer | None = None
) -> Path:
    """Write a TopK transcoder in sparsify's layout (`cfg.json` with `transcode: true` +
    `sae.safetensors`), which `sparsify.SparseCoder.load_from_disk` reads: sparsify's transcoder
    reads the MLP module's input (ln2's output, weight and bias applied), so a transcoder reading
    `blocks.L.ln2.hook_normalized` is unfolded with `model`'s ln2 (the inverse of the import's
    fold). Name the folder by its hookpoint (`layers.L.mlp`) so that it loads back by name."""
    c = t.cfg
    if c.activation != "topk" or c.k is None:
        raise InputError("sparsify holds TopK transcoders only")
    if c.d_out != c.d_in:
        raise InputError("sparsify's transcoders write as many dimensions as they read")
    m = re.match(r"^blocks\.(\d+)\.ln2\.hook_normalized$", c.hook_in)
    if m is None or model is None:
        raise InputError(
            "sparsify's transcoders read the MLP's input: export one that reads "
            "blocks.L.ln2.hook_normalized, and pass the model (its ln2 is unfolded)"
        )
    ln = getattr(model.blocks[int(m.group(1))], "ln2", None)
    w, b = getattr(ln, "w", None), getattr(ln, "b", None)
    if w is None or not bool((w.detach() != 0).all()):
        raise InputError(f"{model.cfg.name}'s ln2 has no invertible weight to unfold")
    W = t.W_enc.detach().double() / w.detach().double()[:, None]  # reads n(x) * w + b
    b_enc = t.b_enc.detach().double()
    if b is not None:
        b_enc = b_enc - b.detach().double() @ W
    sd = {
        "encoder.weight": W.t().float().contiguous(),
        "encoder.bias": b_enc.float().contiguous(),
        "W_dec": t.W_dec.detach().float().contiguous(),
        "b_dec": t.b_dec.detach().float().contiguous(),
    }
    meta = {
        "activation": "topk",
        "expansion_factor": max(1, c.d_sae // c.d_in),
        "normalize_decoder": False,
        "num_latents": c.d_sae,
        "k": c.k,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": True,
        "d_in": c.d_in,
    }
    d = Path(dest)
    d.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(d / "sae.safetensors"))
    (d / "cfg.json").write_text(json.dumps(meta, indent=2) + "\n", "utf-8")
    return d


# ---- circuit-tracer --------------------------------------------------------------------------
def load_circuit_tracer(path: Path, model: HookedTransformer | None = None) -> list[Transcoder]:
    f = path if path.is_file() else next(path / n for n in CONFIGS if (path / n).is_file())
    c = _read_yaml(f)
    kind = c.get("model_kind", "transcoder_set")
    if kind == "cross_layer_transcoder":
        raise ArtifactError(
            f"{f}: a cross-layer transcoder; load its folder of W_enc_*/W_dec_*.safetensors with "
            "lenscope.sae.clt.load_cross_layer_transcoder"
        )
    if kind != "transcoder_set":
        raise ArtifactError(f"{f}: model_kind {kind!r} is not transcoder_set")
    fin, fout = c.get("feature_input_hook"), c.get("feature_output_hook")
    if fin not in (*_INPUTS, _FOLD_LN2) or fout not in _OUTPUTS:
        raise ArtifactError(
            f"{f}: hooks {fin!r} -> {fout!r} are not supported; inputs: "
            f"{', '.join((*_INPUTS, _FOLD_LN2))}; outputs: {', '.join(_OUTPUTS)}"
        )
    if fin == _FOLD_LN2 and model is None:
        raise InputError(f"{f}: transcoders reading mlp.hook_in need the model (pass model=)")
    entries = c.get("transcoders")
    if not isinstance(entries, list) or not entries:
        raise ArtifactError(f"{f}: `transcoders` must list {{layer, filepath}} entries or paths")
    out: dict[int, Transcoder] = {}
    for i, e in enumerate(entries):
        if isinstance(e, str):  # circuit-tracer 0.5: a list of paths, in layer order
            e = {"layer": i, "filepath": e}
        try:
            layer, fp = int(e["layer"]), str(e["filepath"])
        except (KeyError, TypeError, ValueError):
            raise ArtifactError(f"{f}: each transcoder needs a layer and a filepath") from None
        if layer in out:
            raise ArtifactError(f"{f}: two transcoders for layer {layer}")
        if fp.startswith("hf://"):
            raise ArtifactError(f"{f}: {fp} is not on disk; download it and list the local path")
        file = Path(fp) if Path(fp).is_absolute() else f.parent / fp
        hin = f"blocks.{layer}.{_INPUTS.get(str(fin), 'hook_resid_mid')}"
        t = _circuit_tracer_file(file, hin, f"blocks.{layer}.{_OUTPUTS[str(fout)]}", c)
        if fin == _FOLD_LN2:
            assert model is not None
            t = _fold_ln2(t, model, layer)
        out[layer] = t
    return [out[k] for k in sorted(out)]


def _circuit_tracer_file(file: Path, hook_in: str, hook_out: str, c: dict[str, Any]) -> Transcoder:
    if file.suffix == ".npz":  # Gemma Scope's transcoders: SAELens' orientation, JumpReLU
        sd = read_npz(file)
        _need(sd, ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"), file)
        act = "jumprelu"
    else:
        sd = _read_safetensors(file)
        _need(sd, ("W_enc", "b_enc", "W_dec", "b_dec"), file)
        if "log_thresholds" in sd:
            raise ArtifactError(f"{file}: log_thresholds are not supported (threshold is)")
        if sd["W_enc"].ndim != 2 or sd["W_dec"].ndim != 2:
            raise ArtifactError(f"{file}: W_enc and W_dec must be matrices")
        if "activation_function.threshold" in sd:  # circuit-tracer 0.5's name
            sd["threshold"] = sd.pop("activation_function.threshold")
        # W_enc is stored [d_sae, d_in]; W_dec [d_sae, d_out] (0.5) or [d_out, d_sae] (earlier)
        d_sae, d_out = sd["b_enc"].shape[0], sd["b_dec"].shape[0]
        W_dec = sd["W_dec"]
        if tuple(W_dec.shape) != (d_sae, d_out) and tuple(W_dec.shape) == (d_out, d_sae):
            W_dec = W_dec.t()
        sd = {**sd, "W_enc": sd["W_enc"].t(), "W_dec": W_dec}
        if sd.get("W_skip") is not None:
            sd["W_skip"] = sd["W_skip"].t()  # applied as x @ W_skip^T
        act = _lenscope_activation("jumprelu" if "threshold" in sd else "relu", c)
    if sd["W_enc"].ndim != 2 or sd["W_dec"].ndim != 2:
        raise ArtifactError(f"{file}: W_enc and W_dec must be matrices")
    cfg = TranscoderConfig(
        d_in=int(sd["W_enc"].shape[0]),
        d_sae=int(sd["W_enc"].shape[1]),
        d_out=int(sd["W_dec"].shape[1]),
        activation=act,
        hook_in=hook_in,
        hook_out=hook_out,
        model_name=str(c.get("model_name") or ""),
        skip=sd.get("W_skip") is not None,
    )
    return _build(cfg, sd, str(file))


def _lenscope_activation(act: str, c: dict[str, Any]) -> str:
    """A JumpReLU that lenscope exported from a BatchTopK transcoder loads back as one."""
    return "batchtopk" if act == "jumprelu" and c.get("lenscope_activation") == "batchtopk" else act


def _fold_ln2(t: Transcoder, model: HookedTransformer, layer: int) -> Transcoder:
    """A transcoder reading the MLP's input n(x) * w + b, rewritten to read n(x) at
    `ln2.hook_normalized`: W_enc' = w[:, None] * W_enc, b_enc' = b_enc + b @ W_enc."""
    if not 0 <= layer < model.cfg.n_layers:
        raise InputError(f"{model.cfg.name} has no layer {layer} (it has {model.cfg.n_layers})")
    ln = getattr(model.blocks[layer], "ln2", None)
    w = getattr(ln, "w", None)
    if w is None:  # no norm before the MLP: its input is the residual stream itself
        cfg = TranscoderConfig(**{**t.cfg.__dict__, "hook_in": f"blocks.{layer}.hook_resid_mid"})
        return _build(cfg, dict(t.state_dict()), "")
    b = getattr(ln, "b", None)
    W = t.W_enc.detach().double()
    sd = dict(t.state_dict())
    sd["W_enc"] = (w.detach().double()[:, None] * W).to(t.W_enc.dtype)
    if b is not None:
        sd["b_enc"] = (t.b_enc.detach().double() + b.detach().double() @ W).to(t.b_enc.dtype)
    if t.W_skip is not None:  # the skip reads the same input: fold it the same way
        Ws = t.W_skip.detach().double()
        sd["W_skip"] = (w.detach().double()[:, None] * Ws).to(t.W_skip.dtype)
        if b is not None:
            sd["b_dec"] = (t.b_dec.detach().double() + b.detach().double() @ Ws).to(t.b_dec.dtype)
    cfg = TranscoderConfig(**{**t.cfg.__dict__, "hook_in": f"blocks.{layer}.ln2.hook_normalized"})
    return _build(cfg, sd, "")


# ---- shared ----------------------------------------------------------------------------------
def _build(cfg: TranscoderConfig, sd: dict[str, Tensor], where: str) -> Transcoder:
    t = Transcoder(cfg)
    with torch.no_grad():
        for name in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold", "W_skip"):
            if name not in sd or sd[name] is None:
                continue
            dst, src = getattr(t, name), sd[name]
            if tuple(src.shape) != tuple(dst.shape):
                raise ArtifactError(
                    f"{where}: {name} has shape {tuple(src.shape)} but d_in {cfg.d_in}, d_sae "
                    f"{cfg.d_sae} and d_out {cfg.d_out} imply {tuple(dst.shape)}"
                )
            if src.is_floating_point() and not bool(torch.isfinite(src).all()):
                raise ArtifactError(f"{where}: {name} contains NaN or infinite values")
            dst.copy_(src.to(dst.dtype))
    return t.eval()


def _need(sd: dict[str, Tensor], names: tuple[str, ...], where: Path) -> None:
    missing = [n for n in names if n not in sd]
    if missing:
        raise ArtifactError(f"{where}: missing tensor(s) {', '.join(missing)}")


def _read_safetensors(f: Path) -> dict[str, Tensor]:
    try:
        return load_file(str(f))
    except (SafetensorError, FileNotFoundError, OSError) as e:
        raise ArtifactError(f"cannot read {f}: {e}") from None


def _read_yaml(f: Path) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        raise InputError(
            "reading circuit-tracer's config.yaml needs PyYAML (pip install pyyaml)"
        ) from None
    try:
        d = yaml.safe_load(f.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ArtifactError(f"cannot read {f}: {str(e).splitlines()[0]}") from None
    if not isinstance(d, dict):
        raise ArtifactError(f"{f} must hold a YAML mapping")
    return d
