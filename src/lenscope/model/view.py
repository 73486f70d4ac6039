"""Private views: a model's weights with hook points of their own, for one call at a time.

Hooks attached to a `HookedTransformer` live on its hook points, so two callers hooking the same
model at once (threads, the server's concurrent requests, a notebook user's own hooks) would see
each other's hooks. `private_view` hands out a structural copy of the model whose parameters and
buffers *are* the model's (no weight is copied; in-place weight changes and `.to()` are seen) and
whose hook points are its own, with no hook attached: hooks on the model (lenscope hooks and
torch module hooks alike) are not seen by the view, and hooks put on the view never reach the
model. Views are pooled per model and returned with every hook removed.

`isolated` wraps an instrument's entry point so that it always runs on such a view; every
instrument that runs the model does (see docs/model.md, "Private views"). A view of a view is a
view of the original model.
"""

from __future__ import annotations

import copy
import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from torch import nn

from lenscope.model.hooks import HookPoint
from lenscope.model.transformer import HookedTransformer

P = ParamSpec("P")
R = TypeVar("R")

_POOL_SIZE = 8
_LOCK = threading.Lock()
_POOL: weakref.WeakKeyDictionary[HookedTransformer, list[HookedTransformer]] = (
    weakref.WeakKeyDictionary()
)
_ORIGIN: weakref.WeakKeyDictionary[HookedTransformer, weakref.ref[HookedTransformer]] = (
    weakref.WeakKeyDictionary()
)
# a view's submodules, walked once (a view's structure is never changed: a caller's change to
# its parameters shows as a view out of sync with the model, which is then cloned afresh)
_VIEW_MODULES: weakref.WeakKeyDictionary[HookedTransformer, list[nn.Module]] = (
    weakref.WeakKeyDictionary()
)
# torch's per-module hook tables; a view starts with all of them empty
_MODULE_HOOKS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


def _modules(model: nn.Module) -> list[nn.Module]:
    """Every submodule, depth first (a plain walk: `named_modules` costs ~10x more per call)."""
    out, stack = [], [model]
    while stack:
        m = stack.pop()
        out.append(m)
        stack.extend(c for c in reversed(m._modules.values()) if c is not None)
    return out


def _tensors(modules: list[nn.Module]) -> list[Any]:
    return [
        t
        for m in modules
        for table in (m._parameters, m._buffers)
        for t in table.values()
        if t is not None
    ]


def origin(model: HookedTransformer) -> HookedTransformer:
    """The model a view was made from (`model` itself when it is not a view)."""
    ref = _ORIGIN.get(model)
    base = ref() if ref is not None else None
    return model if base is None else base


def _in_sync(view: HookedTransformer, model: HookedTransformer) -> bool:
    mine, theirs = _tensors(_VIEW_MODULES[view]), _tensors(_modules(model))
    return (
        len(mine) == len(theirs)
        and all(a is b for a, b in zip(mine, theirs, strict=True))
        and view.training == model.training
        and view.tokenizer is model.tokenizer
        and view.cfg is model.cfg
    )


def _empty_hooks(model: HookedTransformer, memo: dict[int, Any]) -> None:
    """Make the copy start with empty hook tables instead of copying the model's hooks (a hook
    may close over anything, e.g. a lock or a non-leaf tensor that cannot be deep-copied)."""
    for module in _modules(model):
        if isinstance(module, HookPoint):
            memo[id(module.fwd_hooks)] = []
            memo[id(module.bwd_hooks)] = []
            ctx = module.__dict__.get("ctx")
            if isinstance(ctx, dict):
                memo[id(ctx)] = {}
        for attr in _MODULE_HOOKS:
            table = module.__dict__.get(attr)
            if isinstance(table, dict):
                memo[id(table)] = OrderedDict() if isinstance(table, OrderedDict) else {}


def _clone(model: HookedTransformer) -> HookedTransformer:
    memo: dict[int, Any] = {id(t): t for t in _tensors(_modules(model))}
    for shared in (model.tokenizer, model.cfg, getattr(model, "manifest", None)):
        if shared is not None:
            memo[id(shared)] = shared
    _empty_hooks(model, memo)
    view = copy.deepcopy(model, memo)
    view.reset_hooks()
    with _LOCK:
        _ORIGIN[view] = weakref.ref(model)
        _VIEW_MODULES[view] = _modules(view)
    return view


def _clear(view: HookedTransformer) -> None:
    """Remove every hook from a view: its hook points' and any torch module hook put on it."""
    view.reset_hooks()
    for module in _VIEW_MODULES[view]:
        for attr in _MODULE_HOOKS:
            table = module.__dict__.get(attr)
            if table:
                table.clear()


@contextmanager
def private_view(model: HookedTransformer) -> Iterator[HookedTransformer]:
    """A hookable twin of `model` for one caller; hooks put on it never touch `model`, and
    hooks on `model` are not seen by it."""
    model = origin(model)
    with _LOCK:
        free = _POOL.setdefault(model, [])
        view = free.pop() if free else None
    if view is None or not _in_sync(view, model):
        view = _clone(model)
    try:
        yield view
    finally:
        _clear(view)
        with _LOCK:
            pool = _POOL.setdefault(model, [])
            if len(pool) < _POOL_SIZE:
                pool.append(view)


def isolated(
    fn: Callable[Concatenate[HookedTransformer, P], R],
) -> Callable[Concatenate[HookedTransformer, P], R]:
    """Run `fn(model, ...)` on a `private_view` of its model (the first argument)."""

    @functools.wraps(fn)
    def call(model: HookedTransformer, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if not isinstance(cast(object, model), HookedTransformer):
            return fn(model, *args, **kwargs)  # a duck-typed model: run as given
        with private_view(model) as view:
            return fn(view, *args, **kwargs)

    return call
