"""Export a transcoder set to circuit-tracer's and SAELens' layouts (both load back unchanged
through `load_transcoders` / `load_transcoder_set`).

circuit-tracer (0.5): a folder with `config.yaml` and one safetensors file per layer.
- per-layer sets: `model_kind: transcoder_set`, `feature_input_hook: mlp.hook_in`,
  `feature_output_hook: mlp.hook_out`, `scan`, and `transcoders`, the list of per-layer files
  (paths relative to the folder: circuit-tracer resolves them against the working directory, so
  run it from the folder or make them absolute). Each `layer_{l}.safetensors` holds W_enc
  [d_sae, d_model], W_dec [d_sae, d_model], b_enc, b_dec, `activation_function.threshold` for
  JumpReLU and BatchTopK (a JumpReLU at inference), and W_skip [d_model, d_model] (applied as
  x @ W_skip^T). circuit-tracer's features read the MLP's input, LayerNorm's output *after* its
  weight w and bias b, while lenscope's read `ln2.hook_normalized` (before them): the export
  divides the encoder (and skip) rows by w and moves b into the biases, exactly undoing the fold
  that the loader applies, so the model is needed and w must have no zero.
- cross-layer sets: `model_kind: cross_layer_transcoder` and circuit-tracer's
  `W_enc_{l}.safetensors` (W_enc_{l} [d_sae, d_model], b_enc_{l}, b_dec_{l}, threshold_{l}) /
  `W_dec_{l}.safetensors` (W_dec_{l} [d_sae, n_layers - l, d_model]), unfolded the same way.
SAELens: one folder per layer (`layer_{l}/cfg.json` + `sae_weights.safetensors`), architecture
`transcoder`, `skip_transcoder`, `jumprelu_transcoder` or `jumprelu_skip_transcoder` (BatchTopK
goes as JumpReLU), reading lenscope's hooks. TopK has no exact counterpart in either library and
is refused with a clear message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor

from lenscope.errors import InputError
from lenscope.model import HookedTransformer
from lenscope.sae.transcoder import Transcoder
from lenscope.sae.transcoder_set import TranscoderSet

FORMATS = ("circuit-tracer", "saelens")


def export_transcoder_set(
    ts: TranscoderSet, dest: Path | str, fmt: str, model: HookedTransformer | None = None
) -> Path:
    """Write `ts` at `dest` in `fmt` (circuit-tracer | saelens); returns `dest`."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; use {' or '.join(FORMATS)}")
    if ts.cfg.activation == "topk":
        raise InputError(
            f"{fmt} has no TopK transcoder that computes what lenscope's does; train with "
            "--activation batchtopk (a JumpReLU at inference), jumprelu or relu to export"
        )
    d = Path(dest)
    if fmt == "saelens":
        if ts.clt is not None:
            raise InputError("SAELens has no cross-layer transcoders; export to circuit-tracer")
        for layer, t in zip(ts.cfg.layers, ts.transcoders, strict=True):
            export_saelens(t, d / f"layer_{layer}")
        return d
    return export_circuit_tracer(ts, d, model)


# ---- SAELens -------------------------------------------------------------------------------------
def export_saelens(t: Transcoder, dest: Path) -> Path:
    """One transcoder as SAELens' `cfg.json` + `sae_weights.safetensors` (W_skip [d_out, d_in])."""
    jump = t.cfg.activation in ("jumprelu", "batchtopk")
    arch = ("jumprelu_" if jump else "") + (
        "skip_transcoder" if t.W_skip is not None else "transcoder"
    )
    sd = {n: getattr(t, n) for n in ("W_enc", "b_enc", "W_dec", "b_dec")}
    if jump:
        sd["threshold"] = t.threshold
    if t.W_skip is not None:
        sd["W_skip"] = t.W_skip.t()
    cfg = {
        "architecture": arch,
        "d_in": t.cfg.d_in,
        "d_sae": t.cfg.d_sae,
        "d_out": t.cfg.d_out,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "hook_name": t.cfg.hook_in,
        "hook_name_out": t.cfg.hook_out,
        "metadata": {
            "hook_name": t.cfg.hook_in,
            "hook_name_out": t.cfg.hook_out,
            "model_name": t.cfg.model_name,
            "exported_by": "lenscope",
            "lenscope_activation": t.cfg.activation,
        },
    }
    _write(dest, {"sae_weights.safetensors": sd})
    (dest / "cfg.json").write_text(json.dumps(cfg, indent=2) + "\n", "utf-8")
    return dest


# ---- circuit-tracer ------------------------------------------------------------------------------
def _ln2(model: HookedTransformer | None, layer: int, hook_in: str) -> tuple[Tensor, Tensor] | None:
    """(w, b) of the norm before layer's MLP to divide out, or None when there is none."""
    if not hook_in.endswith("ln2.hook_normalized"):
        raise InputError(
            f"circuit-tracer's transcoders read the MLP's input; this set reads {hook_in}"
        )
    if model is None:
        raise InputError("exporting to circuit-tracer needs the model (its ln2 weights)")
    if not 0 <= layer < model.cfg.n_layers:
        raise InputError(f"{model.cfg.name} has no layer {layer}")
    ln = getattr(model.blocks[layer], "ln2", None)
    w = getattr(ln, "w", None)
    if w is None:
        return None
    w = w.detach().double().cpu()
    if bool((w == 0).any()):
        raise InputError(
            f"{model.cfg.name}'s ln2 weight at layer {layer} has zeros: the MLP's input does not "
            "determine the normalised activations the transcoder reads, so it cannot be exported"
        )
    b = getattr(ln, "b", None)
    bb = torch.zeros_like(w) if b is None else b.detach().double().cpu()
    return w, bb


def _unfold(W: Tensor, b_enc: Tensor, wb: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
    """Encoder [d_in, S] reading n(x) rewritten to read u = n(x) * w + b."""
    if wb is None:
        return W.double(), b_enc.double()
    w, b = wb
    Wd = W.double() / w[:, None]
    return Wd, b_enc.double() - b @ Wd


def export_circuit_tracer(ts: TranscoderSet, dest: Path, model: HookedTransformer | None) -> Path:
    c = ts.cfg
    if model is not None:
        ts.check(model, strict=False)
    scan = f"{c.model_name or 'model'}/{ts.name}"
    files: dict[str, dict[str, Tensor]] = {}
    if ts.clt is not None:
        clt = ts.clt
        for i, layer in enumerate(c.layers):
            wb = _ln2(model, layer, f"blocks.{layer}.{c.hook_in}")
            W, be = _unfold(clt.W_enc[i].t(), clt.b_enc[i], wb)
            enc = {f"W_enc_{i}": W.t(), f"b_enc_{i}": be, f"b_dec_{i}": clt.b_dec[i]}
            if clt.threshold is not None:
                enc[f"threshold_{i}"] = clt.threshold[i]
            files[f"W_enc_{i}.safetensors"] = enc
            files[f"W_dec_{i}.safetensors"] = {f"W_dec_{i}": clt.W_dec[i]}
        config: dict[str, Any] = {"model_kind": "cross_layer_transcoder"}
    else:
        paths = []
        for layer, t in zip(c.layers, ts.transcoders, strict=True):
            wb = _ln2(model, layer, t.cfg.hook_in)
            W, be = _unfold(t.W_enc.detach(), t.b_enc.detach(), wb)
            sd = {"W_enc": W.t(), "b_enc": be, "W_dec": t.W_dec, "b_dec": t.b_dec.double()}
            if t.cfg.activation in ("jumprelu", "batchtopk"):
                sd["activation_function.threshold"] = t.threshold
            if t.W_skip is not None:
                Ws = t.W_skip.detach().double()
                if wb is not None:
                    w, b = wb
                    Ws = Ws / w[:, None]
                    sd["b_dec"] = sd["b_dec"] - b @ Ws
                sd["W_skip"] = Ws.t()
            name = f"layer_{layer}.safetensors"
            files[name] = sd
            paths.append(name)
        if list(c.layers) != list(range(len(c.layers))):
            raise InputError(
                f"circuit-tracer needs a transcoder at every layer from 0; this set has {list(c.layers)}"
            )
        config = {"model_kind": "transcoder_set", "transcoders": paths}
    config |= {
        "model_name": c.model_name,
        "scan": scan,
        "feature_input_hook": "mlp.hook_in",
        "feature_output_hook": "mlp.hook_out",
        "exported_by": "lenscope",
        "lenscope_activation": c.activation,
    }
    _write(dest, files)
    import yaml

    (dest / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
    return dest


def _write(dest: Path, files: dict[str, dict[str, Tensor]]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name, sd in files.items():
        out = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in sd.items()}
        save_file(out, str(dest / name))
