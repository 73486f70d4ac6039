"""Tests for lenscope.data.batches: resumable random windows, repeat rows, eval windows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from lenscope.data import iter_eval_batches, sample_batch
from lenscope.errors import InputError


@pytest.fixture
def stream() -> np.ndarray:
    # random ids with repeats allowed, like real text
    return np.random.default_rng(123).integers(0, 500, size=3000).astype(np.uint16)


def _is_slice(stream: np.ndarray, seq: np.ndarray) -> bool:
    """Brute force: does `seq` occur contiguously somewhere in `stream`?"""
    n, k = len(stream), len(seq)
    return any(np.array_equal(stream[s : s + k], seq) for s in range(n - k + 1))


def _period(row: np.ndarray) -> int | None:
    """The smallest p <= len/2 with row[i] == row[i + p] for all i, if any."""
    for p in range(1, len(row) // 2 + 1):
        if np.array_equal(row[p:], row[:-p]):
            return p
    return None


def test_shape_dtype_and_windows_are_slices(stream: np.ndarray) -> None:
    batch = sample_batch(stream, 6, 32, seed=0, step=0)
    assert batch.shape == (6, 32) and batch.dtype == torch.int64
    for row in batch.numpy():
        assert _is_slice(stream, row)


def test_pure_function_of_seed_and_step(stream: np.ndarray) -> None:
    steps = [sample_batch(stream, 4, 16, seed=7, step=s) for s in range(5)]
    # a "resumed" run that starts at step 3 sees the same batches
    for s in (3, 4):
        assert torch.equal(sample_batch(stream, 4, 16, seed=7, step=s), steps[s])
    assert not torch.equal(steps[0], steps[1])
    assert not torch.equal(sample_batch(stream, 4, 16, seed=8, step=0), steps[0])
    # a memory map or another integer dtype of the same ids gives the same batch
    assert torch.equal(sample_batch(stream.astype(np.int32), 4, 16, seed=7, step=2), steps[2])


def test_window_starts_cover_the_whole_stream() -> None:
    stream = np.arange(50, dtype=np.uint16)
    firsts = set()
    for step in range(60):
        b = sample_batch(stream, 8, 10, seed=0, step=step).numpy()
        assert (np.diff(b, axis=1) == 1).all()  # arange windows are consecutive
        firsts |= set(b[:, 0].tolist())
    assert firsts == set(range(41))  # every start 0..n-ctx occurs, none beyond
    assert torch.equal(sample_batch(stream, 2, 50, seed=0, step=0), torch.arange(50).repeat(2, 1))


def test_repeat_rows_are_periodic_chunks(stream: np.ndarray) -> None:
    ctx, min_repeat = 64, 8
    n_repeat = 0
    n_rows = 0
    for step in range(20):
        batch = sample_batch(
            stream, 8, ctx, seed=1, step=step, repeat_fraction=0.25, min_repeat=min_repeat
        ).numpy()
        for row in batch:
            n_rows += 1
            p = _period(row)
            if _is_slice(stream, row):
                continue  # an ordinary window
            n_repeat += 1
            assert p is not None and p <= ctx // 2
            # the true chunk length L is a multiple of the smallest period with L in range
            lengths = [L for L in range(min_repeat, ctx // 2 + 1) if L % p == 0]
            assert any(
                _is_slice(stream, row[:L]) and np.array_equal(row, np.resize(row[:L], ctx))
                for L in lengths
            )
    assert n_repeat == n_rows // 4  # 0.25 * 8 = exactly 2 per batch


def test_repeat_fraction_fractional_count_is_exact_in_expectation() -> None:
    stream = np.arange(10_000, dtype=np.uint32)  # ordinary windows are strictly increasing
    counts = []
    for step in range(400):
        b = sample_batch(stream, 3, 32, seed=0, step=step, repeat_fraction=0.5, min_repeat=4)
        counts.append(int((np.diff(b.numpy(), axis=1) != 1).any(axis=1).sum()))
    assert set(counts) <= {1, 2}
    assert 0.4 < np.mean(counts) / 3 < 0.6


def test_all_rows_repeated() -> None:
    stream = np.arange(1000, dtype=np.uint16)
    b = sample_batch(stream, 5, 40, seed=3, step=9, repeat_fraction=1.0, min_repeat=16).numpy()
    for row in b:
        L = int(np.argmax(row[1:] != row[:-1] + 1)) + 1  # where the arange restarts
        assert 16 <= L <= 20
        np.testing.assert_array_equal(row, np.resize(np.arange(row[0], row[0] + L), 40))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"batch_size": -2}, "batch_size must be at least 1"),
        ({"ctx": 0}, "ctx must be at least 1"),
        ({"ctx": 3001}, r"ctx 3001 is longer than the token stream \(3000 tokens\)"),
        ({"seed": -1}, "seed must be at least 0"),
        ({"step": 1.5}, "step must be an integer"),
        ({"repeat_fraction": 1.5}, r"repeat_fraction must be in \[0, 1\]"),
        ({"repeat_fraction": 0.5, "ctx": 20}, "ctx >= 2 \\* min_repeat"),
        ({"min_repeat": 0}, "min_repeat must be at least 1"),
    ],
)
def test_sample_batch_bad_inputs(stream: np.ndarray, kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"batch_size": 2, "ctx": 8, "seed": 0, "step": 0} | kwargs
    with pytest.raises(InputError, match=match):
        sample_batch(stream, **args)


def test_bad_token_arrays() -> None:
    with pytest.raises(InputError, match="1-D"):
        sample_batch(np.zeros((4, 4), dtype=np.int64), 1, 2, seed=0, step=0)
    with pytest.raises(InputError, match="integer ids"):
        sample_batch(np.zeros(10, dtype=np.float32), 1, 2, seed=0, step=0)
    with pytest.raises(InputError, match="longer than the token stream"):
        sample_batch(np.zeros(0, dtype=np.uint16), 1, 2, seed=0, step=0)
    with pytest.raises(InputError, match="1-D"):
        sample_batch([1, 2, 3], 1, 2, seed=0, step=0)  # type: ignore[arg-type]


def test_eval_batches_are_consecutive_windows() -> None:
    stream = np.arange(105, dtype=np.uint16)
    batches = list(iter_eval_batches(stream, 3, 10))
    assert [b.shape for b in batches] == [(3, 10), (3, 10), (3, 10), (1, 10)]
    assert all(b.dtype == torch.int64 for b in batches)
    np.testing.assert_array_equal(torch.cat(batches).numpy().ravel(), np.arange(100))
    limited = list(iter_eval_batches(stream, 3, 10, max_batches=2))
    assert len(limited) == 2 and torch.equal(limited[1], batches[1])
    assert len(list(iter_eval_batches(stream, 3, 105))) == 1


def test_eval_batches_bad_inputs() -> None:
    stream = np.arange(20, dtype=np.uint16)
    with pytest.raises(InputError, match="longer than the token stream"):
        list(iter_eval_batches(stream, 2, 21))
    with pytest.raises(InputError, match="batch_size"):
        list(iter_eval_batches(stream, 0, 5))
    with pytest.raises(InputError, match="max_batches"):
        iter_eval_batches(stream, 2, 5, max_batches=0)  # checked before iterating
