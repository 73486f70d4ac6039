"""Activations for training: blocks from forward passes (or a disk cache), shuffled, in batches.

Block b holds the activations of `n_windows` random token windows drawn as
`sample_batch(tokens, n_windows, ctx, seed=seed, step=b)`, computed `forward_batch` windows per
forward pass; with N data-parallel ranks, rank r runs chunks r, r+N, ... and the chunks are
gathered, so the block is identical whatever N is. The training stream is the concatenation of
the blocks, each shuffled by a permutation drawn from (seed, b): the shuffling buffer. Global batch
s is rows [s*B, (s+1)*B) of that stream and rank r takes its r-th slice, so any step's batch is a
pure function of (data, seed, s): a resumed run sees exactly the batches it would have seen.
A cached source (`lenscope sae cache`) stores the unshuffled blocks, so training from the cache
matches training from live activations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from lenscope.artifacts import read_manifest
from lenscope.data import sample_batch
from lenscope.data.stream import TokenArray
from lenscope.errors import ArtifactError, InputError
from lenscope.model import HookedTransformer
from lenscope.model.capture import iter_activations
from lenscope.sae.distributed import Comm

CACHE_KIND = "sae-activations"
CACHE_SCHEMA = 1


class ActivationSource(Protocol):
    d_in: int
    block_tokens: int

    def block(self, b: int) -> Tensor: ...


class LiveSource:
    """Blocks computed by forward passes of the model (see the module docstring). With several
    hooks (a transcoder's inputs and outputs, captured in the same forward pass) each row is
    their activations concatenated in the order given."""

    def __init__(
        self,
        model: HookedTransformer,
        hook: str | Sequence[str],
        tokens: TokenArray,
        d_in: int,
        *,
        ctx: int,
        buffer_tokens: int,
        forward_batch: int,
        seed: int,
        comm: Comm | None = None,
    ) -> None:
        if ctx > model.cfg.n_ctx:
            raise InputError(f"ctx {ctx} exceeds {model.cfg.name}'s context of {model.cfg.n_ctx}")
        if len(tokens) < ctx:
            raise InputError(f"the token stream has {len(tokens)} tokens, fewer than ctx {ctx}")
        self.hooks = [hook] if isinstance(hook, str) else list(hook)
        self.model, self.hook, self.tokens = model, ",".join(self.hooks), tokens
        self.d_in, self.ctx, self.seed = d_in, ctx, seed
        self.n_windows = max(1, math.ceil(buffer_tokens / ctx))
        self.block_tokens = self.n_windows * ctx
        self.forward_batch = forward_batch
        self.comm = comm or Comm()

    def block(self, b: int) -> Tensor:
        windows = sample_batch(self.tokens, self.n_windows, self.ctx, seed=self.seed, step=b)
        chunks = list(windows.split(self.forward_batch))
        c = self.comm
        # one forward per chunk (every chunk but the last overall is full): the same batches on
        # any number of ranks, so the block is bit-identical whatever the world size
        own = [ch for i, ch in enumerate(chunks) if i % c.world == c.rank]
        acts = iter_activations(self.model, own, self.hooks, batch_size=self.forward_batch)
        mine = [torch.cat([a[h] for h in self.hooks], dim=-1) for a in acts]
        if not c.active:
            return torch.cat(mine)
        rows = self.forward_batch * self.ctx
        per_rank = math.ceil(len(chunks) / c.world)
        dtype = mine[0].dtype if mine else torch.float32
        stacked = torch.zeros(per_rank, rows, self.d_in, dtype=dtype)
        for j, a in enumerate(mine):
            stacked[j, : a.shape[0]] = a
        got = c.all_gather_cat(stacked)
        out = [
            got[(i % c.world) * per_rank + i // c.world][: ch.numel()]
            for i, ch in enumerate(chunks)
        ]
        return torch.cat(out)


class CachedSource:
    """Blocks read from an activation cache written by `write_cache` (block b = shard b mod n)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        m = read_manifest(self.path, CACHE_KIND, CACHE_SCHEMA)
        d = m.data
        try:
            self.d_in = int(d["d_in"])
            self.block_tokens = int(d["block_tokens"])
            self.n_blocks = int(d["n_blocks"])
            self.hook_name = str(d["hook_name"])
            self.model_fingerprint = d.get("model_fingerprint")
            self.seed = int(d["seed"])
        except (KeyError, TypeError, ValueError) as e:
            raise ArtifactError(f"{self.path}: the activation cache manifest lacks {e}") from None
        if self.n_blocks < 1:
            raise ArtifactError(f"{self.path} holds no blocks of activations")

    def block(self, b: int) -> Tensor:
        f = self.path / "blocks" / f"{b % self.n_blocks:06d}.safetensors"
        try:
            t = load_file(str(f))["acts"]
        except (SafetensorError, FileNotFoundError, KeyError, OSError) as e:
            raise ArtifactError(f"cannot read {f}: {e}; the activation cache is corrupt") from None
        if tuple(t.shape) != (self.block_tokens, self.d_in):
            raise ArtifactError(
                f"{f} holds {tuple(t.shape)}, the manifest says ({self.block_tokens}, {self.d_in})"
            )
        return t


class BatchStream:
    """Global batch s of a source's shuffled block stream; this rank's slice of it."""

    def __init__(self, source: ActivationSource, batch_size: int, seed: int, comm: Comm) -> None:
        if batch_size % comm.world:
            raise InputError(
                f"batch size {batch_size} does not split over {comm.world} processes; "
                "use a multiple of the process count"
            )
        self.source, self.batch_size, self.seed, self.comm = source, batch_size, seed, comm
        self._blocks: dict[int, Tensor] = {}

    def shuffled(self, b: int) -> Tensor:
        if b not in self._blocks:
            blk = self.source.block(b)
            if not bool(torch.isfinite(blk).all()):
                raise InputError(
                    f"block {b} of the activations contains NaN or infinite values; the model "
                    "produces non-finite activations at this hook (check the model and dtype)"
                )
            perm = np.random.default_rng([self.seed, b, 7]).permutation(blk.shape[0])
            self._blocks = {k: v for k, v in self._blocks.items() if k == b - 1}
            self._blocks[b] = blk[torch.from_numpy(perm)]
        return self._blocks[b]

    def batch(self, step: int) -> Tensor:
        T = self.source.block_tokens
        B = self.batch_size
        start, end = step * B, (step + 1) * B
        local = B // self.comm.world
        lo = start + self.comm.rank * local
        hi = lo + local
        parts = []
        for b in range(start // T, (end - 1) // T + 1):  # every rank fetches the same blocks
            blk = self.shuffled(b)
            s, e = max(lo, b * T), min(hi, (b + 1) * T)
            if s < e:
                parts.append(blk[s - b * T : e - b * T])
        return torch.cat(parts)


def cache_manifest_data(
    source: LiveSource, n_blocks: int, fingerprint: str | None
) -> dict[str, Any]:
    return {
        "d_in": source.d_in,
        "block_tokens": source.block_tokens,
        "n_blocks": n_blocks,
        "hook_name": source.hook,
        "model_name": source.model.cfg.name,
        "model_fingerprint": fingerprint,
        "ctx": source.ctx,
        "seed": source.seed,
        "windows_per_block": source.n_windows,
    }


class MemorySource:
    """Blocks held in memory (block b = blocks[b mod n]); experiments reuse one set of them."""

    def __init__(self, blocks: list[Tensor]) -> None:
        if not blocks:
            raise InputError("a memory source needs at least one block of activations")
        shapes = {tuple(b.shape) for b in blocks}
        if len(shapes) != 1:
            raise InputError(f"blocks must share one shape, got {sorted(shapes)}")
        self.blocks = blocks
        self.block_tokens, self.d_in = blocks[0].shape

    def block(self, b: int) -> Tensor:
        return self.blocks[b % len(self.blocks)]
