"""Hash priorities: a fixed pseudo-random number in [0, 1) for every (seed, stream, position).

Random samples keep the positions with the smallest priority (a bottom-k sketch): a uniform
sample without replacement whose result depends only on the set of positions seen, never on the
order or the sharding, so per-rank and per-shard samples merge exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

RANDOM_STREAM = 0  # the shared random sample of tokens
QUANTILE_STREAM = 1  # the order of tokens inside each quantile bin
ROW_STREAM = 2  # which rows feed quantile samples and histograms

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def priorities(seed: int, stream: int, positions: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """splitmix64 of (seed, stream, position) as float64 in [0, 1), 53 random bits each."""
    with np.errstate(over="ignore"):
        key = _mix(np.array([seed * 8 + stream], dtype=np.uint64) * _GOLDEN + _GOLDEN)
        z = _mix(np.asarray(positions, dtype=np.int64).astype(np.uint64) * _GOLDEN + key)
    out: npt.NDArray[np.float64] = (z >> np.uint64(11)).astype(np.float64) * (2.0**-53)
    return out
