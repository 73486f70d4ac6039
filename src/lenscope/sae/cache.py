"""`write_cache`: activations at a hook point saved to disk, block by block, for later training.

The artifact (kind "sae-activations") holds `blocks/000000.safetensors`, ... each the unshuffled
block b of `LiveSource` (tensor "acts" [block_tokens, d_in]); training from it with the same seed
sees exactly the batches that training from live forward passes would.
"""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.torch import save_file

from lenscope.artifacts import Manifest, writing_artifact
from lenscope.data.stream import TokenArray
from lenscope.errors import InputError
from lenscope.model import HookedTransformer, fingerprint
from lenscope.model.capture import check_hook, hook_width
from lenscope.sae.buffer import CACHE_KIND, CACHE_SCHEMA, LiveSource, cache_manifest_data


def write_cache(
    model: HookedTransformer,
    hook: str,
    tokens: TokenArray,
    dest: Path | str,
    *,
    n_tokens: int,
    ctx: int | None = None,
    buffer_tokens: int = 65536,
    forward_batch: int = 16,
    seed: int = 0,
    progress: bool = True,
    source_note: str = "",
) -> Path:
    """Write ceil(n_tokens / block) blocks of activations at `hook` to `dest` (atomic)."""
    if n_tokens < 1:
        raise InputError(f"n_tokens must be positive, got {n_tokens}")
    check_hook(model, hook)
    src = LiveSource(
        model,
        hook,
        tokens,
        hook_width(model.cfg, hook),
        ctx=ctx or model.cfg.n_ctx,
        buffer_tokens=buffer_tokens,
        forward_batch=forward_batch,
        seed=seed,
    )
    n_blocks = math.ceil(n_tokens / src.block_tokens)
    man = Manifest(
        kind=CACHE_KIND,
        schema_version=CACHE_SCHEMA,
        provenance={"tokens": source_note, "command": "lenscope sae cache"},
        data=cache_manifest_data(src, n_blocks, fingerprint(model)),
    )
    bar = Progress(
        TextColumn("[bold]caching activations[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not progress,
    )
    with writing_artifact(dest, man) as tmp, bar:
        (tmp / "blocks").mkdir()
        task = bar.add_task("blocks", total=n_blocks)
        for b in range(n_blocks):
            save_file(
                {"acts": src.block(b).contiguous()}, str(tmp / "blocks" / f"{b:06d}.safetensors")
            )
            bar.update(task, advance=1)
    return Path(dest)
