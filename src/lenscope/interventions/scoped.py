"""Request-scoped hooks: a private view of a model that shares its weights but not its hook points.

Hooks attached to a `HookedTransformer` live on its hook points, so two requests hooking the same
model at once (the server runs requests concurrently) would see each other's hooks. `private_view`
hands out a structural copy of the model whose parameters and buffers *are* the model's (no weight
is copied; in-place weight changes and `.to()` are seen) and whose hook points are its own. Views are
pooled per model and returned with every hook removed, so nothing is ever left on the model.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lenscope.model.transformer import HookedTransformer

_POOL_SIZE = 8
_LOCK = threading.Lock()
_POOL: weakref.WeakKeyDictionary[HookedTransformer, list[HookedTransformer]] = (
    weakref.WeakKeyDictionary()
)


def _tensors(model: HookedTransformer) -> list[Any]:
    return [*model.parameters(), *model.buffers()]


def _in_sync(view: HookedTransformer, model: HookedTransformer) -> bool:
    mine, theirs = _tensors(view), _tensors(model)
    return (
        len(mine) == len(theirs)
        and all(a is b for a, b in zip(mine, theirs, strict=True))
        and view.training == model.training
        and view.tokenizer is model.tokenizer
        and view.cfg is model.cfg
    )


def _clone(model: HookedTransformer) -> HookedTransformer:
    memo: dict[int, Any] = {id(t): t for t in _tensors(model)}
    for shared in (model.tokenizer, model.cfg, getattr(model, "manifest", None)):
        if shared is not None:
            memo[id(shared)] = shared
    view = copy.deepcopy(model, memo)
    view.reset_hooks()
    return view


@contextmanager
def private_view(model: HookedTransformer) -> Iterator[HookedTransformer]:
    """A hookable twin of `model` for one request; hooks put on it never touch `model`."""
    with _LOCK:
        free = _POOL.setdefault(model, [])
        view = free.pop() if free else None
    if view is None or not _in_sync(view, model):
        view = _clone(model)
    try:
        yield view
    finally:
        view.reset_hooks()
        with _LOCK:
            pool = _POOL.setdefault(model, [])
            if len(pool) < _POOL_SIZE:
                pool.append(view)
