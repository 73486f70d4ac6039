"""Helpers for the isolation tests: a hook that spoils every forward, exact result comparison."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lenscope import HookedTransformer
from lenscope.model.hooks import HookPoint


def zero(x: Tensor, hook: HookPoint) -> Tensor:
    return torch.zeros_like(x)


@contextmanager
def spoiled(model: HookedTransformer, name: str = "blocks.*.attn.hook_z") -> Iterator[None]:
    """A user's hook on the shared model that changes every forward (zeroes every head's z)."""
    model.add_hook(name, zero)
    try:
        yield
    finally:
        model.reset_hooks()


def clean(model: HookedTransformer) -> bool:
    """No hook (lenscope's or torch's) attached anywhere on the model."""
    torch_hooks = any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules()
    )
    return not torch_hooks and not any(hp.active for hp in model.hook_dict.values())


def assert_same(a: Any, b: Any, where: str = "result") -> None:
    """Exactly equal (tensors bit for bit, NaN equal to NaN), recursing into dataclasses,
    mappings and sequences; the assertion names the first field that differs."""
    if isinstance(a, Tensor):
        assert isinstance(b, Tensor) and a.shape == b.shape and a.dtype == b.dtype, where
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=where)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), where
        np.testing.assert_array_equal(a, b, err_msg=where, strict=True)
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def differs(a: Any, b: Any) -> bool:
    try:
        assert_same(a, b)
    except AssertionError:
        return True
    return False


def while_hooking(
    model: HookedTransformer,
    work: Callable[[int], None],
    hook: str = "blocks.*.attn.hook_z",
    n_workers: int = 4,
) -> list[BaseException]:
    """Run `work(i)` in `n_workers` threads while another thread keeps attaching and removing a
    spoiling hook at `hook` on `model`; return what the workers raised."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def hooker() -> None:
        while not stop.is_set():
            with spoiled(model, hook):
                pass

    def worker(i: int) -> None:
        try:
            work(i)
        except BaseException as e:
            errors.append(e)

    h = threading.Thread(target=hooker)
    h.start()
    ws = [threading.Thread(target=worker, args=(i,)) for i in range(n_workers)]
    for w in ws:
        w.start()
    for w in ws:
        w.join()
    stop.set()
    h.join()
    return errors
