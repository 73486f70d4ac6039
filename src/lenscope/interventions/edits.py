"""`Edit`: one change to an activation tensor (set selected entries to a value, or add a vector).

A selection names indices per dimension (dimension 0 is the batch row); dimensions it does not name
are taken whole. Values broadcast against the activation, so a zero, a mean vector or a whole
source activation (fitted to the prompt's length with `fit_positions`) all work the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from lenscope.errors import InputError


@dataclass
class Edit:
    select: Mapping[int, Sequence[int]] = field(default_factory=dict)
    value: Tensor | float = 0.0
    add: bool = False
    what: str = "edit"  # for error messages: the intervention this edit comes from

    def mask(self, shape: torch.Size, device: torch.device) -> Tensor:
        m = torch.ones((1,) * len(shape), dtype=torch.bool, device=device)
        for dim, idx in self.select.items():
            if dim >= len(shape):
                raise InputError(f"{self.what}: the activation has no dimension {dim}")
            bad = [i for i in idx if not 0 <= i < shape[dim]]
            if bad:
                raise InputError(
                    f"{self.what}: index {bad[0]} is out of range for a dimension of size "
                    f"{shape[dim]}"
                )
            v = torch.zeros(shape[dim], dtype=torch.bool, device=device)
            v[list(idx)] = True
            view = [1] * len(shape)
            view[dim] = shape[dim]
            m = m & v.view(view)
        return m

    def apply(self, x: Tensor) -> Tensor:
        m = self.mask(x.shape, x.device)
        if isinstance(self.value, Tensor):
            v = self.value.to(device=x.device, dtype=x.dtype)
            try:
                torch.broadcast_shapes(v.shape, x.shape)
            except RuntimeError:
                raise InputError(
                    f"{self.what}: a value of shape {tuple(v.shape)} does not fit the activation "
                    f"of shape {tuple(x.shape)}"
                ) from None
        else:
            v = torch.tensor(self.value, device=x.device, dtype=x.dtype)
        if self.add:
            return x + torch.where(m, v, torch.zeros((), dtype=x.dtype, device=x.device))
        return torch.where(m, v, x)


def apply_all(x: Tensor, edits: Sequence[Edit]) -> Tensor:
    for e in edits:
        x = e.apply(x)
    return x


def fit_positions(t: Tensor, n: int, dims: Sequence[int]) -> Tensor:
    """Truncate or zero-pad `t` along `dims` to length `n` (aligns a source run to a prompt)."""
    for d in dims:
        have = t.shape[d]
        if have > n:
            t = t.narrow(d, 0, n)
        elif have < n:
            pad_shape = list(t.shape)
            pad_shape[d] = n - have
            t = torch.cat([t, t.new_zeros(pad_shape)], dim=d)
    return t
