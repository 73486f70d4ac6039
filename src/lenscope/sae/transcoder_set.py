"""The transcoder set: the unit a user names, one transcoder per layer (or one cross-layer one).

A lenscope artifact: a folder with `manifest.json` (kind "transcoder-set") beside one
safetensors file per layer, `layer_{l}.safetensors`:
- per-layer sets: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_out], b_dec [d_out],
  threshold [d_sae] (JumpReLU, BatchTopK) and W_skip [d_in, d_out] (skip transcoders), SAELens'
  orientation;
- cross-layer sets: the same, but W_dec [d_sae, n_layers - l, d_out] (layer l's latents into the
  MLP outputs of layers l, l+1, ...).
The manifest's data holds the `TranscoderSetConfig` (sizes, activation, k, skip, layers, hooks,
model name and fingerprint), the stored dtype, and the figures of `evaluate_transcoders`.

Names resolve in `$LENSCOPE_HOME/transcoders/` (trained) then `assets/transcoders/` (shipped);
any folder works too, and a folder in another layout (circuit-tracer's config.yaml, SAELens,
sparsify, circuit-tracer's cross-layer W_enc_*/W_dec_* files) is imported on the fly.

    ts = load_transcoder_set("mini-tc-batchtopk-k16-n1024", model=model)
    ts.dictionaries()        # one Dictionary per layer (per source layer for a CLT)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from lenscope.artifacts import Manifest, lenscope_home, read_manifest, writing_artifact
from lenscope.errors import ArtifactError, InputError, LenscopeError
from lenscope.model import HookedTransformer, fingerprint
from lenscope.sae.clt import CrossLayerTranscoder, is_clt_folder, load_cross_layer_transcoder
from lenscope.sae.dictionary import Dictionary, check_compatible
from lenscope.sae.transcoder import Transcoder, TranscoderConfig
from lenscope.sae.transcoder_stack import TranscoderSetConfig

KIND = "transcoder-set"
SCHEMA = 1


def shipped_transcoders_dir() -> Path:
    from lenscope.model.load import assets_dir

    return assets_dir() / "transcoders"


def trained_transcoders_dir() -> Path:
    return lenscope_home() / "transcoders"


@dataclass(eq=False)
class TranscoderSet:
    """A model's transcoders: per-layer `transcoders`, or one cross-layer `clt`."""

    name: str
    cfg: TranscoderSetConfig
    transcoders: list[Transcoder] = field(default_factory=list)
    clt: CrossLayerTranscoder | None = None
    path: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def layers(self) -> list[int]:
        return list(self.cfg.layers)

    @property
    def cross_layer(self) -> bool:
        return self.clt is not None

    def dictionaries(self) -> list[Dictionary]:
        """One `Dictionary` per layer (per source layer for a cross-layer transcoder)."""
        if self.clt is not None:
            dics = self.clt.dictionaries()
            fp, name = self.cfg.model_fingerprint, self.cfg.model_name
            return [_with_model(d, fp, name) for d in dics]
        return [t.as_dictionary() for t in self.transcoders]

    def check(self, model: HookedTransformer, strict: bool = True) -> None:
        """`InputError` unless every dictionary fits `model`'s hooks and widths (and, with
        `strict`, was trained on this very model when the set records a fingerprint)."""
        for d in self.dictionaries():
            check_compatible(model, d, strict=strict)

    def to(self, device: str | torch.device) -> TranscoderSet:
        self.transcoders = [t.to(device) for t in self.transcoders]
        if self.clt is not None:
            c = self.clt
            c.W_enc = [w.to(device) for w in c.W_enc]
            c.b_enc = [w.to(device) for w in c.b_enc]
            c.b_dec = [w.to(device) for w in c.b_dec]
            c.W_dec = [w.to(device) for w in c.W_dec]
            c.threshold = None if c.threshold is None else [w.to(device) for w in c.threshold]
        return self


def _with_model(d: Dictionary, fp: str | None, name: str) -> Dictionary:
    from dataclasses import replace

    return replace(d, model_fingerprint=fp, model_name=name)


# ---- save ----------------------------------------------------------------------------------------
def save_transcoder_set(
    ts: TranscoderSet,
    dest: Path | str,
    *,
    provenance: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write `ts` as a lenscope transcoder-set artifact (fp16 tensors with `half`); atomic."""
    dtype = torch.float16 if half else torch.float32
    files: dict[int, dict[str, Tensor]] = {}
    if ts.clt is not None:
        c = ts.clt
        for i, layer in enumerate(ts.cfg.layers):
            sd = {
                "W_enc": c.W_enc[i].t(),
                "b_enc": c.b_enc[i],
                "W_dec": c.W_dec[i],
                "b_dec": c.b_dec[i],
            }
            if c.threshold is not None:
                sd["threshold"] = c.threshold[i]
            files[layer] = sd
    else:
        for layer, t in zip(ts.cfg.layers, ts.transcoders, strict=True):
            names = ["W_enc", "b_enc", "W_dec", "b_dec", "threshold"]
            sd = {n: getattr(t, n) for n in names}
            if t.W_skip is not None:
                sd["W_skip"] = t.W_skip
            files[layer] = sd
    data = {
        "config": ts.cfg.to_dict(),
        "dtype": str(dtype).removeprefix("torch."),
        "metrics": ts.metrics,
    }
    man = Manifest(kind=KIND, schema_version=SCHEMA, provenance=provenance or {}, data=data)
    with writing_artifact(dest, man) as tmp:
        for layer, sd in files.items():
            out = {n: v.detach().to("cpu", dtype).contiguous() for n, v in sd.items()}
            save_file(out, str(tmp / f"layer_{layer}.safetensors"))
    return Path(dest)


def update_metrics(path: Path | str, metrics: dict[str, Any]) -> None:
    """Record evaluation figures in a set's manifest (rewritten atomically)."""
    import json

    p = Path(path)
    m = read_manifest(p, KIND, SCHEMA)
    m.data["metrics"] = {**m.data.get("metrics", {}), **metrics}
    tmp = p / ".manifest.json.tmp"
    tmp.write_text(json.dumps(m.to_json(), indent=2) + "\n", "utf-8")
    os.replace(tmp, p / "manifest.json")


# ---- load ----------------------------------------------------------------------------------------
def is_transcoder_set(path: Path) -> bool:
    """Whether `path` is a lenscope transcoder-set artifact (its manifest says so)."""
    import json

    try:
        kind = json.loads((path / "manifest.json").read_text("utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        return False
    return bool(kind == KIND)


def resolve_transcoder_set_path(name_or_path: str | os.PathLike[str]) -> Path:
    s = str(name_or_path)
    p = Path(s).expanduser()
    if p.exists():
        return p
    if "/" not in s:
        for root in (trained_transcoders_dir(), shipped_transcoders_dir()):
            if (root / s).is_dir():
                return root / s
    names = sorted(e.name for e in list_transcoder_sets())
    raise InputError(
        f"no transcoder set named {s!r}: not a path, nor in {trained_transcoders_dir()} or "
        f"{shipped_transcoders_dir()}. Available: {', '.join(names) or 'none'} "
        "(see `lenscope transcoder list`)"
    )


def load_transcoder_set(
    name_or_path: str | os.PathLike[str],
    model: HookedTransformer | None = None,
    device: str | torch.device = "cpu",
    *,
    strict: bool = True,
) -> TranscoderSet:
    """A transcoder set by name or path, on `device`. Any supported layout loads (lenscope's,
    circuit-tracer's per-layer or cross-layer files, SAELens, sparsify). With `model`, every
    layer is checked against it (hooks, widths, and with `strict` the fingerprint)."""
    from lenscope.device import resolve_device

    dev = resolve_device(device)
    p = resolve_transcoder_set_path(name_or_path)
    ts = _load_lenscope(p) if (p / "manifest.json").is_file() else _import_foreign(p, model)
    ts.to(dev)
    if model is not None:
        ts.check(model, strict=strict)
    return ts


def _load_lenscope(d: Path) -> TranscoderSet:
    m = read_manifest(d, KIND, SCHEMA)
    try:
        cfg = TranscoderSetConfig.from_dict(m.data["config"])
    except (KeyError, TypeError) as e:
        raise ArtifactError(f"{d}: manifest has no valid transcoder-set config ({e})") from None
    except InputError as e:
        raise ArtifactError(f"{d}: invalid transcoder-set config: {e}") from None
    sds = []
    for layer in cfg.layers:
        f = d / f"layer_{layer}.safetensors"
        try:
            sds.append({k: v.float() for k, v in load_file(str(f)).items()})
        except (SafetensorError, FileNotFoundError, OSError) as e:
            raise ArtifactError(f"cannot read {f}: {e}; the transcoder set is corrupt") from None
    metrics = m.data.get("metrics", {})
    if cfg.cross_layer:
        clt = _clt_from(cfg, sds, d)
        return TranscoderSet(d.name, cfg, clt=clt, path=d, metrics=metrics)
    ts = [_transcoder_from(cfg, layer, sd, d) for layer, sd in zip(cfg.layers, sds, strict=True)]
    return TranscoderSet(d.name, cfg, transcoders=ts, path=d, metrics=metrics)


def _transcoder_from(
    cfg: TranscoderSetConfig, layer: int, sd: dict[str, Tensor], d: Path
) -> Transcoder:
    tc = TranscoderConfig(
        d_in=cfg.d_in,
        d_sae=cfg.d_sae,
        d_out=cfg.d_out,
        activation=cfg.activation,
        hook_in=f"blocks.{layer}.{cfg.hook_in}",
        hook_out=f"blocks.{layer}.{cfg.hook_out}",
        model_name=cfg.model_name,
        k=cfg.k,
        skip=cfg.skip,
        model_fingerprint=cfg.model_fingerprint,
    )
    t = Transcoder(tc)
    names = ["W_enc", "b_enc", "W_dec", "b_dec", "threshold"] + (["W_skip"] if cfg.skip else [])
    missing = [n for n in names if n not in sd]
    if missing:
        raise ArtifactError(f"{d}/layer_{layer}.safetensors lacks {', '.join(missing)}")
    with torch.no_grad():
        for n in names:
            dst = getattr(t, n)
            if tuple(sd[n].shape) != tuple(dst.shape):
                raise ArtifactError(
                    f"{d}/layer_{layer}.safetensors: {n} has shape {tuple(sd[n].shape)}, the "
                    f"manifest implies {tuple(dst.shape)}"
                )
            if not bool(torch.isfinite(sd[n]).all()):
                raise ArtifactError(f"{d}/layer_{layer}.safetensors: {n} is not finite")
            dst.copy_(sd[n])
    return t.eval()


def _clt_from(
    cfg: TranscoderSetConfig, sds: list[dict[str, Tensor]], d: Path
) -> CrossLayerTranscoder:
    L = cfg.n_layers
    for i, sd in enumerate(sds):
        want = {
            "W_enc": (cfg.d_in, cfg.d_sae),
            "b_enc": (cfg.d_sae,),
            "W_dec": (cfg.d_sae, L - i, cfg.d_out),
            "b_dec": (cfg.d_out,),
        }
        for n, shape in want.items():
            if n not in sd or tuple(sd[n].shape) != shape:
                got = tuple(sd[n].shape) if n in sd else "missing"
                raise ArtifactError(f"{d}/layer_{i}.safetensors: {n} is {got}, expected {shape}")
    thr = [sd["threshold"] for sd in sds] if cfg.activation == "jumprelu" else None
    return CrossLayerTranscoder(
        W_enc=[sd["W_enc"].t().contiguous() for sd in sds],
        b_enc=[sd["b_enc"] for sd in sds],
        b_dec=[sd["b_dec"] for sd in sds],
        W_dec=[sd["W_dec"] for sd in sds],
        threshold=thr,
        hook_in=cfg.hook_in,
    )


def _import_foreign(p: Path, model: HookedTransformer | None) -> TranscoderSet:
    """A set from another library's layout (see the module docstring)."""
    from lenscope.sae.transcoder_formats import load_transcoders

    mname = model.cfg.name if model is not None else ""
    if is_clt_folder(p):
        clt = _fold_clt(load_cross_layer_transcoder(p), p, model)
        cfg = TranscoderSetConfig(
            d_in=clt.cfg.d_in,
            d_sae=clt.cfg.d_sae,
            d_out=int(clt.b_dec[0].shape[0]),
            layers=tuple(range(clt.n_layers)),
            activation="relu" if clt.threshold is None else "jumprelu",
            cross_layer=True,
            hook_in=clt.hook_in,
            model_name=mname,
        )
        return TranscoderSet(p.name, cfg, clt=clt, path=p)
    ts = load_transcoders(p, model=model)
    layers = []
    for t in ts:
        layer, rest_in = _layer_of(t.cfg.hook_in)
        layer_out, rest_out = _layer_of(t.cfg.hook_out)
        if layer != layer_out:
            raise ArtifactError(f"{p}: a transcoder reads layer {layer} and writes {layer_out}")
        layers.append((layer, rest_in, rest_out))
    first = ts[0].cfg
    if len({(t.cfg.d_in, t.cfg.d_sae, t.cfg.d_out, t.cfg.activation, t.cfg.k) for t in ts}) > 1:
        raise ArtifactError(f"{p}: the layers' transcoders differ in size or activation")
    if len({(a, b) for _, a, b in layers}) > 1:
        raise ArtifactError(f"{p}: the layers' transcoders read or write different hooks")
    cfg = TranscoderSetConfig(
        d_in=first.d_in,
        d_sae=first.d_sae,
        d_out=first.d_out,
        layers=tuple(x[0] for x in layers),
        activation=first.activation,
        k=first.k,
        skip=any(t.W_skip is not None for t in ts),
        hook_in=layers[0][1],
        hook_out=layers[0][2],
        model_name=first.model_name or mname,
        model_fingerprint=first.model_fingerprint,
    )
    return TranscoderSet(p.name, cfg, transcoders=ts, path=p)


def _fold_clt(
    clt: CrossLayerTranscoder, p: Path, model: HookedTransformer | None
) -> CrossLayerTranscoder:
    """A CLT whose config.yaml says it reads `mlp.hook_in` (the MLP's input, after ln2's weight
    w and bias b) rewritten to read `ln2.hook_normalized`: W_enc' = W_enc * w, b_enc' = b_enc +
    W_enc b (what `transcoder_formats` does for per-layer sets)."""
    from lenscope.sae.transcoder_formats import CONFIGS, _read_yaml

    conf = next((p / n for n in CONFIGS if (p / n).is_file()), None)
    hook = _read_yaml(conf).get("feature_input_hook") if conf is not None else None
    if hook != "mlp.hook_in":
        return clt
    if model is None:
        raise InputError(f"{p}: its features read mlp.hook_in; pass the model to load it")
    for i in range(clt.n_layers):
        ln = getattr(model.blocks[i], "ln2", None)
        w, b = getattr(ln, "w", None), getattr(ln, "b", None)
        if w is None:
            continue
        W = clt.W_enc[i].double()
        clt.W_enc[i] = (W * w.detach().double().cpu()[None, :]).float()
        if b is not None:
            clt.b_enc[i] = (clt.b_enc[i].double() + W @ b.detach().double().cpu()).float()
    clt.hook_in = "ln2.hook_normalized"
    return clt


def _layer_of(hook: str) -> tuple[int, str]:
    parts = hook.split(".", 2)
    if len(parts) != 3 or parts[0] != "blocks" or not parts[1].isdigit():
        raise ArtifactError(f"transcoder hook {hook!r} is not blocks.{{layer}}.<hook>")
    return int(parts[1]), parts[2]


# ---- listing -------------------------------------------------------------------------------------
@dataclass
class TranscoderSetEntry:
    name: str
    source: str  # "shipped" | "trained"
    path: Path
    summary: str
    shadowed: bool = False
    model_fingerprint: str | None = None


def list_transcoder_sets() -> list[TranscoderSetEntry]:
    """Sets that `load_transcoder_set` opens by name (manifests only; no weights read)."""
    out: list[TranscoderSetEntry] = []
    trained = trained_transcoders_dir()
    for source, root in (("shipped", shipped_transcoders_dir()), ("trained", trained)):
        if not root.is_dir():
            continue
        for d in sorted(root.iterdir()):
            if not (d / "manifest.json").is_file():
                continue
            fp = None
            try:
                c = read_manifest(d, KIND).data.get("config", {})
                kind = "cross-layer" if c.get("cross_layer") else "per-layer"
                k = f" k={c.get('k')}" if c.get("k") else ""
                skip = " +skip" if c.get("skip") else ""
                summary = (
                    f"{kind} {c.get('activation')}{k}{skip}, {c.get('d_sae')} latents x "
                    f"layers {c.get('layers')} of {c.get('model_name') or '?'}"
                )
                fp = c.get("model_fingerprint")
            except LenscopeError as e:
                summary = f"unreadable: {e}"
            shadowed = source == "shipped" and (trained / d.name).is_dir()
            out.append(TranscoderSetEntry(d.name, source, d, summary, shadowed, fp))
    return out


def transcoder_sets_for_model(model_or_fingerprint: HookedTransformer | str) -> list[Path]:
    """Shipped, then trained, transcoder sets made on exactly this model (by fingerprint);
    a shipped set shadowed by a trained one of its name is skipped."""
    fp = (
        model_or_fingerprint
        if isinstance(model_or_fingerprint, str)
        else fingerprint(model_or_fingerprint)
    )
    return [e.path for e in list_transcoder_sets() if not e.shadowed and e.model_fingerprint == fp]
