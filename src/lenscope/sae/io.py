"""The SAE artifact: `manifest.json` (kind "sae") beside `sae.safetensors`.

The manifest's data records the SAEConfig (architecture, d_in, d_sae, k, normalisation, hook
point, model name and fingerprint), the stored dtype and, after training, its final metrics;
provenance records how it was made. Names resolve in `$LENSCOPE_HOME/saes/` (trained) then
`assets/saes/` (shipped), so an SAE you trained wins over a shipped one of the same name; any
directory path works too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lenscope.artifacts import Manifest, lenscope_home, read_manifest, writing_artifact
from lenscope.device import resolve_device
from lenscope.errors import ArtifactError, InputError
from lenscope.model import HookedTransformer
from lenscope.sae.config import SAEConfig
from lenscope.sae.dictionary import Dictionary
from lenscope.sae.model import SparseAutoencoder, assign_tensors

KIND = "sae"
SCHEMA = 1
WEIGHTS = "sae.safetensors"
TENSORS = ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")


def shipped_saes_dir() -> Path:
    from lenscope.model.load import assets_dir

    return assets_dir() / "saes"


def trained_saes_dir() -> Path:
    return lenscope_home() / "saes"


def save_sae(
    sae: SparseAutoencoder,
    dest: Path | str,
    *,
    provenance: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write an SAE artifact (fp16 tensors with `half`); atomic, replaces `dest`."""
    dtype = torch.float16 if half else torch.float32
    sd = {n: getattr(sae, n).detach().to("cpu", dtype).contiguous() for n in TENSORS}
    data = {
        "config": sae.cfg.to_dict(),
        "dtype": str(dtype).removeprefix("torch."),
        "metrics": metrics or {},
    }
    man = Manifest(kind=KIND, schema_version=SCHEMA, provenance=provenance or {}, data=data)
    with writing_artifact(dest, man) as tmp:
        save_file(sd, str(tmp / WEIGHTS))
    return Path(dest)


def resolve_sae_path(name_or_path: str | os.PathLike[str]) -> Path:
    s = str(name_or_path)
    p = Path(s).expanduser()
    if p.is_dir():
        return p
    if "/" not in s:
        for root in (trained_saes_dir(), shipped_saes_dir()):
            if (root / s).is_dir():
                return root / s
    names = sorted(e.name for e in list_saes())
    raise InputError(
        f"no SAE named {s!r}: not a directory, nor in {trained_saes_dir()} or "
        f"{shipped_saes_dir()}. Available: {', '.join(names) or 'none'} (see `lenscope sae list`)"
    )


def load_sae(
    name_or_path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    hook_name: str | None = None,
) -> SparseAutoencoder:
    """Load an SAE artifact by name or path; `ArtifactError` if it is not a valid one. A path in
    another library's layout (SAELens, sparsify, Gemma Scope, OpenAI) is imported, reading
    `hook_name` where its files name none."""
    from lenscope.sae.formats import import_sae, is_foreign_sae

    device = resolve_device(device)
    if is_foreign_sae(p := Path(name_or_path).expanduser()):
        return import_sae(p, hook_name=hook_name).to(device=device, dtype=dtype).eval()
    d = resolve_sae_path(name_or_path)
    m = read_manifest(d, KIND, SCHEMA)
    try:
        cfg = SAEConfig.from_dict(m.data["config"])
    except (KeyError, TypeError) as e:
        raise ArtifactError(f"{d}: manifest has no valid SAE config ({e})") from None
    except InputError as e:
        raise ArtifactError(f"{d}: invalid SAE config: {e}") from None
    try:
        sd = load_file(str(d / WEIGHTS))
    except (SafetensorError, FileNotFoundError, OSError) as e:
        raise ArtifactError(f"cannot read {d / WEIGHTS}: {e}; the SAE is corrupt") from None
    sae = SparseAutoencoder(cfg, dtype=dtype, device=device)
    assign_tensors(sae, sd, str(d))
    sae.manifest = m  # type: ignore[assignment]
    return sae.eval()


def load_dictionaries(
    name_or_path: str | os.PathLike[str],
    model: HookedTransformer | None = None,
    device: str | torch.device = "cpu",
    *,
    hook_name: str | None = None,
) -> list[Dictionary]:
    """Every dictionary at a name or path, as `Dictionary`s: an SAE (a lenscope artifact or
    another library's layout: one), or transcoders (a SAELens transcoder folder, a sparsify
    transcoder, a circuit-tracer `config.yaml`: one per layer; a circuit-tracer cross-layer
    transcoder folder: one per layer). `model` is needed where a transcoder reads the MLP's
    normalised input (its norm's weight is folded into the encoder). A lenscope transcoder set
    (`lenscope transcoder train`) loads by name or path: one dictionary per layer."""
    from lenscope.sae.clt import is_clt_folder, load_cross_layer_transcoder
    from lenscope.sae.transcoder_formats import load_transcoders, transcoder_layout
    from lenscope.sae.transcoder_set import (
        is_transcoder_set,
        load_transcoder_set,
        resolve_transcoder_set_path,
    )

    p = Path(name_or_path).expanduser()
    if not p.exists() and "/" not in str(name_or_path):
        try:
            p = resolve_sae_path(name_or_path)
        except InputError as no_sae:  # not an SAE's name: a transcoder set's, or that error
            try:
                p = resolve_transcoder_set_path(name_or_path)
            except InputError:
                raise no_sae from None
    if is_transcoder_set(p):
        return load_transcoder_set(p, model, device=device, strict=False).dictionaries()
    if transcoder_layout(p) is not None:
        return [t.as_dictionary() for t in load_transcoders(p, model=model, device=device)]
    if is_clt_folder(p):
        return load_cross_layer_transcoder(p).dictionaries()
    return [Dictionary.of(load_sae(p, device=device, hook_name=hook_name))]


@dataclass
class SAEEntry:
    name: str
    source: str  # "shipped" | "trained"
    path: Path
    summary: str
    shadowed: bool = False  # a trained SAE of the same name loads instead of this shipped one


def list_saes() -> list[SAEEntry]:
    """SAE artifacts that `load_sae` opens by name (manifests only; no weights read), and
    folders there in another library's layout (SAEs, transcoders: `load_dictionaries` opens
    them by name). A shipped entry whose name a trained one also has is listed with
    `shadowed=True`."""
    out: list[SAEEntry] = []
    trained = trained_saes_dir()
    for source, root in (("shipped", shipped_saes_dir()), ("trained", trained)):
        if not root.is_dir():
            continue
        for d in sorted(root.iterdir()):
            if not (d / "manifest.json").is_file():
                if (foreign := _foreign_summary(d)) is not None:
                    shadowed = source == "shipped" and (trained / d.name).is_dir()
                    out.append(SAEEntry(d.name, source, d, foreign, shadowed))
                continue
            try:
                c = read_manifest(d, KIND).data.get("config", {})
                summary = (
                    f"{c.get('architecture')} k={c.get('k')} {c.get('d_sae')} latents on "
                    f"{c.get('model_name') or '?'} {c.get('hook_name') or '?'}"
                )
            except ArtifactError as e:
                summary = f"unreadable: {e}"
            shadowed = source == "shipped" and (trained / d.name).is_dir()
            out.append(SAEEntry(d.name, source, d, summary, shadowed))
    return out


def _foreign_summary(d: Path) -> str | None:
    """What a folder without a lenscope manifest holds, if it is a dictionary layout."""
    from lenscope.sae.clt import is_clt_folder
    from lenscope.sae.formats import is_foreign_sae
    from lenscope.sae.transcoder_formats import transcoder_layout

    if not d.is_dir():
        return None
    if (layout := transcoder_layout(d)) is not None:
        return f"transcoders ({layout} layout)"
    if is_clt_folder(d):
        return "cross-layer transcoder (circuit-tracer layout)"
    if is_foreign_sae(d):
        return "SAE in another library's layout (imported when loaded)"
    return None


def saes_for_model(fingerprint: str, *, residual_only: bool = False) -> list[Path]:
    """Shipped, then trained, SAEs made on exactly the model with this fingerprint, one per hook
    point (the first found wins; a shipped SAE shadowed by a trained one of its name is skipped). `residual_only`: only hooks whose latents are debugger nodes."""
    return list(saes_by_hook(fingerprint, residual_only=residual_only).values())


def saes_by_hook(fingerprint: str, *, residual_only: bool = False) -> dict[str, Path]:
    """`saes_for_model` keyed by the hook point each SAE reads."""
    from lenscope.errors import LenscopeError
    from lenscope.nodes import latent_site

    chosen: dict[str, Path] = {}
    for entry in list_saes():
        if entry.shadowed:
            continue
        try:
            c = read_manifest(entry.path, KIND).data.get("config", {})
            hook = str(c.get("hook_name") or "")
            if residual_only:
                latent_site(hook)
        except LenscopeError:
            continue
        if hook and c.get("model_fingerprint") == fingerprint and hook not in chosen:
            chosen[hook] = entry.path
    return chosen
