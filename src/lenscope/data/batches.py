"""Batches of token windows for training (random, resumable) and evaluation (consecutive).

`sample_batch` is a pure function of (tokens, batch_size, ctx, seed, step, repeat settings): it
draws from `numpy.random.default_rng([seed, step])`, so a run resumed at step s sees exactly the
batches it would have seen. The draws, in order: the start of every row's window; the number of
repeat rows (floor(f * batch) plus one more with probability equal to the remainder, so the
expected fraction is exact); which rows; each repeat row's chunk length L in
[min_repeat, ctx // 2]; each chunk's start. A repeat row is the chunk tokens[c : c + L] repeated
(and cut) to fill ctx positions, which teaches induction heads quickly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from lenscope.errors import InputError


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _check_tokens(tokens: npt.NDArray[Any], ctx: int) -> int:
    if not isinstance(tokens, np.ndarray) or tokens.ndim != 1:
        raise InputError("tokens must be a 1-D numpy array of token ids (a token stream)")
    if not np.issubdtype(tokens.dtype, np.integer):
        raise InputError(f"tokens must hold integer ids, not {tokens.dtype}")
    n = int(tokens.shape[0])
    if ctx > n:
        raise InputError(
            f"ctx {ctx} is longer than the token stream ({n} tokens); "
            "use a shorter context or a bigger corpus"
        )
    return n


def sample_batch(
    tokens: npt.NDArray[Any],
    batch_size: int,
    ctx: int,
    *,
    seed: int,
    step: int,
    repeat_fraction: float = 0.0,
    min_repeat: int = 16,
) -> torch.Tensor:
    """A [batch_size, ctx] int64 tensor of random windows of `tokens` for training step `step`.

    With `repeat_fraction` > 0, that fraction of rows (in expectation) is one corpus chunk of
    random length in [min_repeat, ctx // 2] repeated to fill the row.
    """
    batch_size = _check_int("batch_size", batch_size, 1)
    ctx = _check_int("ctx", ctx, 1)
    seed = _check_int("seed", seed, 0)
    step = _check_int("step", step, 0)
    min_repeat = _check_int("min_repeat", min_repeat, 1)
    if isinstance(repeat_fraction, bool) or not isinstance(repeat_fraction, int | float):
        raise InputError(f"repeat_fraction must be a number in [0, 1], got {repeat_fraction!r}")
    if not 0.0 <= repeat_fraction <= 1.0:
        raise InputError(f"repeat_fraction must be in [0, 1], got {repeat_fraction}")
    if repeat_fraction > 0 and ctx // 2 < min_repeat:
        raise InputError(
            f"repeat rows need ctx >= 2 * min_repeat, got ctx {ctx} and min_repeat {min_repeat}; "
            "lower min_repeat or set repeat_fraction=0"
        )
    n = _check_tokens(tokens, ctx)

    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, n - ctx + 1, size=batch_size)
    positions = np.arange(ctx)
    idx = starts[:, None] + positions[None, :]
    if repeat_fraction > 0:
        whole, part = divmod(repeat_fraction * batch_size, 1.0)
        n_rep = min(batch_size, int(whole) + int(rng.random() < part))
        rows = np.sort(rng.choice(batch_size, size=n_rep, replace=False))
        lengths = rng.integers(min_repeat, ctx // 2 + 1, size=n_rep)
        chunk_starts = rng.integers(0, n - lengths + 1)
        idx[rows] = chunk_starts[:, None] + positions[None, :] % lengths[:, None]
    return torch.from_numpy(np.asarray(tokens[idx], dtype=np.int64))


def iter_eval_batches(
    tokens: npt.NDArray[Any], batch_size: int, ctx: int, max_batches: int | None = None
) -> Iterator[torch.Tensor]:
    """Consecutive non-overlapping windows tokens[k*ctx:(k+1)*ctx], batch_size rows at a time.

    Yields int64 tensors [rows, ctx]; the last batch may have fewer rows; the tail shorter than
    ctx is dropped. Stops after `max_batches` batches when given. Arguments are checked at
    call time, before iteration starts.
    """
    batch_size = _check_int("batch_size", batch_size, 1)
    ctx = _check_int("ctx", ctx, 1)
    if max_batches is not None:
        max_batches = _check_int("max_batches", max_batches, 1)
    n = _check_tokens(tokens, ctx)
    windows = n // ctx
    n_batches = -(-windows // batch_size)
    if max_batches is not None:
        n_batches = min(n_batches, max_batches)
    return _eval_batches(tokens, batch_size, ctx, windows, n_batches)


def _eval_batches(
    tokens: npt.NDArray[Any], batch_size: int, ctx: int, windows: int, n_batches: int
) -> Iterator[torch.Tensor]:
    for b in range(n_batches):
        lo = b * batch_size
        hi = min(lo + batch_size, windows)
        block = np.asarray(tokens[lo * ctx : hi * ctx], dtype=np.int64)
        yield torch.from_numpy(block.reshape(hi - lo, ctx))
