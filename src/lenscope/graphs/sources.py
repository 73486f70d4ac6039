"""Which transcoders a graph uses: a path, a name, or the model's own set.

A path is a folder (or circuit-tracer `config.yaml`) of per-layer transcoders in any layout
`sae.transcoder_formats.load_transcoders` reads, or a cross-layer transcoder folder
(`W_enc_0.safetensors`, ...). A name goes to `lenscope.sae.load_transcoder_set`, and nothing to
the first of `lenscope.sae.transcoder_sets_for_model(model)` (the shipped and trained sets),
where those lookups exist (looked up at run time, so this works with and without them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lenscope.errors import InputError
from lenscope.model.transformer import HookedTransformer
from lenscope.sae.dictionary import Dictionary


def load_graph_transcoders(
    model: HookedTransformer, name_or_path: str | None, device: str | torch.device = "cpu"
) -> list[Dictionary]:
    if name_or_path is not None and Path(name_or_path).exists():
        return _from_path(model, Path(name_or_path), device)
    import lenscope.sae as sae

    lookup: Any = getattr(sae, "load_transcoder_set", None)
    if not callable(lookup):
        if name_or_path is None:
            raise InputError(f"no transcoders for {model.cfg.name}: pass --transcoders PATH")
        raise InputError(f"{name_or_path} is not a folder of transcoders")
    name: Any = name_or_path
    if name is None:  # the model's own sets (shipped or trained), where lenscope can list them
        for_model: Any = getattr(sae, "transcoder_sets_for_model", None)
        found_sets = for_model(model) if callable(for_model) else []
        if not found_sets:
            raise InputError(f"no transcoders for {model.cfg.name}: pass --transcoders PATH")
        name = found_sets[0]
    found = lookup(name, model=model, device=device)
    from lenscope.graphs.replacement import as_dictionaries

    return as_dictionaries(found)


def _from_path(
    model: HookedTransformer, path: Path, device: str | torch.device
) -> list[Dictionary]:
    from lenscope.sae.clt import is_clt_folder, load_cross_layer_transcoder
    from lenscope.sae.transcoder_formats import load_transcoders

    if is_clt_folder(path):
        clt = load_cross_layer_transcoder(path)
        dics = clt.dictionaries()
        return [_on(d, device) for d in dics]
    return [t.as_dictionary() for t in load_transcoders(path, model=model, device=device)]


def _on(d: Dictionary, device: str | torch.device) -> Dictionary:
    if torch.device(device).type == "cpu":
        return d
    raise InputError(
        "cross-layer transcoders are loaded on the CPU; run the graph with --device cpu"
    )
