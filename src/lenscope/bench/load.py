"""Load one dictionary for the bench by name or directory: an SAE (any format `load_sae`
reads) or a single transcoder (any layout `load_transcoders` reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lenscope.errors import InputError


def load_dictionary(name: str, device: str | torch.device = "cpu") -> Any:
    from lenscope.sae import load_sae, load_transcoders
    from lenscope.sae.transcoder_formats import transcoder_layout

    p = Path(name).expanduser()
    if p.is_dir() and transcoder_layout(p) is not None:
        ts = load_transcoders(p, device=device)
        if len(ts) != 1:
            raise InputError(
                f"{name} holds {len(ts)} transcoders; the bench takes one dictionary per name"
            )
        return ts[0]
    return load_sae(name, device=device)
