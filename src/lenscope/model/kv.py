"""A key/value cache for incremental decoding (TransformerLens's `use_past_kv_cache`).

`model(tokens, kv_cache=cache)` runs only the new positions: each layer's attention appends their
keys and values (after rotary) to the cache and attends over everything cached so far. Hook
points see the new positions only. `generate` uses a cache unless a hook is attached, so that
hooks which index positions keep seeing the whole sequence. Sliding-window layers keep every key
too and narrow the mask to their window when they attend (`layers.within_window`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from lenscope.errors import InputError


@dataclass
class KVSlot:
    """One layer's cached keys and values [batch, pos, n_kv_heads, d_head]."""

    k: Tensor | None = None
    v: Tensor | None = None

    def extend(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append this call's keys and values; return all of them."""
        if self.k is not None and self.v is not None:
            if self.k.shape[0] != k.shape[0]:
                raise InputError(
                    f"this kv_cache holds a batch of {self.k.shape[0]}, not {k.shape[0]}; "
                    "use one cache per batch"
                )
            k, v = torch.cat([self.k, k], 1), torch.cat([self.v, v], 1)
        self.k, self.v = k, v
        return k, v


@dataclass
class KVCache:
    """Every layer's slot, and how many positions they hold."""

    slots: list[KVSlot] = field(default_factory=list)
    length: int = 0

    @classmethod
    def empty(cls, n_layers: int) -> KVCache:
        return cls([KVSlot() for _ in range(n_layers)])

    def positions_and_mask(self, b: int, p: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Positions [b, p] of p new tokens and their mask [1, 1, p, length + p] (True = may
        attend): new token i sits at position length + i and sees every key up to it."""
        start = self.length
        pos = torch.arange(start, start + p, device=device)
        keys = torch.arange(start + p, device=device)
        return pos.expand(b, p), (keys[None, :] <= pos[:, None])[None, None]
