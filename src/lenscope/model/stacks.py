"""Stacks of residual-stream pieces read from an `ActivationCache` (TransformerLens' cache helpers).

Every stack has the stack dimension first: `[n, batch, pos, d_model]` (`pos` is dropped when
`pos_slice` is an int). Boundaries are numbered 0..n_layers: boundary `l < n_layers` is the input
of block `l` (`resid_pre`), boundary `n_layers` the final residual (the last `resid_post`).

Norms. lenscope never folds a norm into the weights after it, so "applying the norm" here uses
the norm's own weight, so that `stack @ model.W_U` (or `model.unembed_resid`) gives what
TransformerLens gives on its folded models:

- a whole residual (`accumulated_resid(apply_ln=True)`) goes through the final norm with its
  statistics recomputed from that residual, weight and bias included: the logit lens, as
  `lenscope.lens` computes it; at the last boundary `model.unembed_resid` of it is the logits.
- a part of a residual (`decompose_resid`, `stack_head_results`, `apply_ln_to_stack`) gets the
  norm's linear part with the scale frozen at the value the cache holds for the whole residual:
  centred (LayerNorm only), divided by the cached scale, times the weight. This is linear, so the
  parts still sum to the whole: the sum of the stack is the norm's output minus its bias.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal, Protocol, overload

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.model.config import ModelConfig
from lenscope.model.layers import Block
from lenscope.model.norms import Norm, normalize, param_like, push

PosSlice = int | slice | tuple[int | None, ...] | list[int] | Tensor | None
Mode = Literal["all", "attn", "mlp"]
MODES = ("all", "attn", "mlp")


class StackModel(Protocol):
    """What the stacks read from a model (a `HookedTransformer` is one). A protocol, so that
    this module depends on neither the cache nor the transformer, which both depend on it."""

    @property
    def cfg(self) -> ModelConfig: ...
    @property
    def W_pos(self) -> Tensor | None: ...
    @property
    def ln_final(self) -> Norm: ...
    def _blocks(self) -> list[Block]: ...


class StackCache(Protocol):
    """What the stacks read from a cache (an `ActivationCache` is one)."""

    @property
    def model(self) -> StackModel | None: ...
    def __getitem__(self, key: str) -> Tensor: ...
    def __iter__(self) -> Iterator[str]: ...
    def keys(self) -> list[str]: ...


# ---- checks ----------------------------------------------------------------------------------
def model_of(cache: StackCache, what: str) -> StackModel:
    model = cache.model
    if model is None:
        raise InputError(
            f"{what} needs the model's weights, but this cache was made without its model; "
            "make it with ActivationCache(acts, n_layers, model=model)"
        )
    return model


def boundary(layer: int | None, n: int, what: str) -> int:
    """A boundary index in 0..n: None and -1 mean n (the final residual), -k counts back."""
    if layer is None:
        return n
    if not isinstance(layer, int) or isinstance(layer, bool):
        raise InputError(f"{what}: layer must be an int or None, got {layer!r}")
    if not -(n + 1) <= layer <= n:
        raise InputError(
            f"{what}: layer {layer} is out of range: the model has {n} layer{'s' * (n != 1)}, "
            f"so layer takes 0..{n} (the input of that block; {n}, -1 or None = the final residual)"
        )
    return layer + n + 1 if layer < 0 else layer


def require(cache: StackCache, names: list[str], what: str) -> None:
    """Raise one clear error naming the names_filter to use if any of `names` is not cached."""
    have = set(cache.keys())
    missing = [n for n in names if n not in have]
    if not missing:
        return
    globs = list(dict.fromkeys(re.sub(r"^blocks\.\d+\.", "blocks.*.", n) for n in names))
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    raise InputError(
        f"{what} needs {missing[0]!r}{more}, which this cache left out; run "
        f"model.run_with_cache(tokens, names_filter={globs!r}) or add those names to your filter"
    )


def slice_pos(t: Tensor, pos_slice: PosSlice, dim: int) -> Tensor:
    """`t` cut along its position dimension `dim`, as TransformerLens' `Slice`: an int picks one
    position (and drops the dimension), a tuple is (start, stop[, step]), a list or tensor picks
    those positions."""
    if pos_slice is None:
        return t
    p = t.shape[dim]
    if isinstance(pos_slice, bool):
        raise InputError(f"pos_slice must be an int, slice, tuple, list or None, not {pos_slice!r}")
    if isinstance(pos_slice, int):
        if not -p <= pos_slice < p:
            raise InputError(f"pos_slice {pos_slice} is out of range for {p} positions")
        return t.select(dim, pos_slice)
    if isinstance(pos_slice, tuple):
        if not 1 <= len(pos_slice) <= 3:
            raise InputError(f"a tuple pos_slice is (start, stop[, step]), got {pos_slice!r}")
        pos_slice = slice(*pos_slice)
    if isinstance(pos_slice, slice):
        index: list[slice] = [slice(None)] * t.ndim
        index[dim] = pos_slice
        return t[tuple(index)]
    idx = torch.as_tensor(pos_slice, dtype=torch.long, device=t.device)
    if idx.ndim != 1:
        raise InputError(f"pos_slice must be one list of positions, got shape {tuple(idx.shape)}")
    if idx.numel() and not (-p <= int(idx.min()) and int(idx.max()) < p):
        raise InputError(f"pos_slice {idx.tolist()} is out of range for {p} positions")
    return t.index_select(dim, idx % p if idx.numel() else idx)


# ---- the residual stream ---------------------------------------------------------------------
def _embed_names(model: StackModel) -> list[str]:
    return ["hook_embed"] + (["hook_pos_embed"] if model.W_pos is not None else [])


def resid_names(model: StackModel, k: int) -> list[str]:
    """The hooks whose value is (or, with no layers, sums to) the residual at boundary k."""
    n = model.cfg.n_layers
    if k < n:
        return [f"blocks.{k}.hook_resid_pre"]
    return [f"blocks.{n - 1}.hook_resid_post"] if n else _embed_names(model)


def resid(cache: StackCache, model: StackModel, k: int) -> Tensor:
    parts = [cache[name] for name in resid_names(model, k)]
    return parts[0] if len(parts) == 1 else parts[0] + parts[1]


def _norm_at(model: StackModel, k: int) -> tuple[Norm, str]:
    """The norm that reads the residual at boundary k, and its scale's hook name."""
    if k == model.cfg.n_layers:
        return model.ln_final, "ln_final.hook_scale"
    return model._blocks()[k].ln1, f"blocks.{k}.ln1.hook_scale"


def _scale_names(model: StackModel, k: int) -> list[str]:
    norm, name = _norm_at(model, k)
    return [] if norm.w is None else [name]


def _apply_ln(
    cache: StackCache, model: StackModel, stack: Tensor, k: int, pos_slice: PosSlice
) -> Tensor:
    norm, name = _norm_at(model, k)
    if norm.w is None:
        return stack
    scale = slice_pos(cache[name], pos_slice, -2)
    if tuple(stack.shape[1:-1]) != tuple(scale.shape[:-1]):
        raise InputError(
            f"a stack of shape {tuple(stack.shape)} does not match the cached scale "
            f"{name!r} of shape {tuple(scale.shape)} cut by pos_slice={pos_slice!r}; "
            "pass the pos_slice the stack was made with"
        )
    return push(norm, scale.to(stack.dtype), stack)


def _stack(parts: list[Tensor], cache: StackCache, pos_slice: PosSlice) -> Tensor:
    if parts:
        return torch.stack(parts)
    for name in cache:
        if name.endswith(("hook_embed", "hook_resid_pre", "hook_resid_post", "hook_attn_out")):
            like = slice_pos(cache[name], pos_slice, -2)
            return like.new_zeros((0, *like.shape))
    raise InputError("nothing to stack, and no residual in this cache to take the shape from")


def _labelled(
    stack: Tensor, labels: list[str], return_labels: bool
) -> Tensor | tuple[Tensor, list[str]]:
    return (stack, labels) if return_labels else stack


# ---- the helpers (also `ActivationCache` methods) ---------------------------------------------
@overload
def accumulated_resid(
    cache: StackCache,
    layer: int | None = ...,
    incl_mid: bool = ...,
    apply_ln: bool = ...,
    pos_slice: PosSlice = ...,
    return_labels: Literal[False] = ...,
) -> Tensor: ...
@overload
def accumulated_resid(
    cache: StackCache,
    layer: int | None = ...,
    incl_mid: bool = ...,
    apply_ln: bool = ...,
    pos_slice: PosSlice = ...,
    *,
    return_labels: Literal[True],
) -> tuple[Tensor, list[str]]: ...
def accumulated_resid(
    cache: StackCache,
    layer: int | None = None,
    incl_mid: bool = False,
    apply_ln: bool = False,
    pos_slice: PosSlice = None,
    return_labels: bool = False,
) -> Tensor | tuple[Tensor, list[str]]:
    """The residual at boundaries 0..layer (`{l}_pre`, `{l}_mid` with incl_mid, `final_post`);
    apply_ln puts each through the final norm recomputed from it (the logit lens)."""
    what = "accumulated_resid"
    model = model_of(cache, what)
    cfg = model.cfg
    k = boundary(layer, cfg.n_layers, what)
    has_mid = not (cfg.attn_only or cfg.parallel_attn_mlp)
    if incl_mid and not has_mid and k > 0:
        kind = "attention-only" if cfg.attn_only else "parallel attention+MLP"
        raise InputError(f"{cfg.name} has {kind} blocks: there is no resid_mid; drop incl_mid")
    names: list[str] = []
    for i in range(k + 1):
        names += resid_names(model, i)
        if incl_mid and i < k:
            names.append(f"blocks.{i}.hook_resid_mid")
    require(cache, names, what)
    parts, labels = [], []
    for i in range(k + 1):
        parts.append(resid(cache, model, i))
        labels.append("final_post" if i == cfg.n_layers else f"{i}_pre")
        if incl_mid and i < k:
            parts.append(cache[f"blocks.{i}.hook_resid_mid"])
            labels.append(f"{i}_mid")
    stack = torch.stack([slice_pos(p, pos_slice, -2) for p in parts])
    if apply_ln:
        stack = normalize(model.ln_final, stack)
    return _labelled(stack, labels, return_labels)


@overload
def decompose_resid(
    cache: StackCache,
    layer: int | None = ...,
    mode: Mode = ...,
    incl_embeds: bool = ...,
    apply_ln: bool = ...,
    pos_slice: PosSlice = ...,
    return_labels: Literal[False] = ...,
) -> Tensor: ...
@overload
def decompose_resid(
    cache: StackCache,
    layer: int | None = ...,
    mode: Mode = ...,
    incl_embeds: bool = ...,
    apply_ln: bool = ...,
    pos_slice: PosSlice = ...,
    *,
    return_labels: Literal[True],
) -> tuple[Tensor, list[str]]: ...
def decompose_resid(
    cache: StackCache,
    layer: int | None = None,
    mode: Mode = "all",
    incl_embeds: bool = True,
    apply_ln: bool = False,
    pos_slice: PosSlice = None,
    return_labels: bool = False,
) -> Tensor | tuple[Tensor, list[str]]:
    """The pieces whose sum is the residual at boundary `layer`: `embed`, `pos_embed` (learned
    positions only), then `{l}_attn_out` and `{l}_mlp_out` of every block before it."""
    what = "decompose_resid"
    if mode not in MODES:
        raise InputError(f"{what}: mode must be one of {', '.join(MODES)}, got {mode!r}")
    model = model_of(cache, what)
    cfg = model.cfg
    k = boundary(layer, cfg.n_layers, what)
    names = _embed_names(model) if incl_embeds else []
    for i in range(k):
        if mode != "mlp":
            names.append(f"blocks.{i}.hook_attn_out")
        if mode != "attn" and not cfg.attn_only:
            names.append(f"blocks.{i}.hook_mlp_out")
    require(cache, names + (_scale_names(model, k) if apply_ln else []), what)
    labels = [re.sub(r"^blocks\.(\d+)\.hook_", r"\1_", n).removeprefix("hook_") for n in names]
    stack = _stack([slice_pos(cache[n], pos_slice, -2) for n in names], cache, pos_slice)
    if apply_ln:
        stack = _apply_ln(cache, model, stack, k, pos_slice)
    return _labelled(stack, labels, return_labels)


@overload
def stack_head_results(
    cache: StackCache,
    layer: int | None = ...,
    pos_slice: PosSlice = ...,
    return_labels: Literal[False] = ...,
    apply_ln: bool = ...,
    incl_remainder: bool = ...,
) -> Tensor: ...
@overload
def stack_head_results(
    cache: StackCache,
    layer: int | None = ...,
    pos_slice: PosSlice = ...,
    *,
    return_labels: Literal[True],
    apply_ln: bool = ...,
    incl_remainder: bool = ...,
) -> tuple[Tensor, list[str]]: ...
def stack_head_results(
    cache: StackCache,
    layer: int | None = -1,
    pos_slice: PosSlice = None,
    return_labels: bool = False,
    apply_ln: bool = False,
    incl_remainder: bool = False,
) -> Tensor | tuple[Tensor, list[str]]:
    """Every head's write to the residual, `z[h] @ W_O[h]`, for the blocks before `layer`
    (`L{l}H{h}`); a block's heads sum to its `hook_attn_out` minus `b_O`. With incl_remainder
    a last `remainder` row holds the rest of the residual at that boundary."""
    what = "stack_head_results"
    model = model_of(cache, what)
    cfg = model.cfg
    k = boundary(layer, cfg.n_layers, what)
    names = [f"blocks.{i}.attn.hook_z" for i in range(k)]
    if incl_remainder:
        names += resid_names(model, k)
    require(cache, names + (_scale_names(model, k) if apply_ln else []), what)
    parts: list[Tensor] = []
    for i in range(k):
        z = slice_pos(cache[f"blocks.{i}.attn.hook_z"], pos_slice, -3)  # [..., head, d_head]
        w_o = param_like(model._blocks()[i].attn.W_O, z)  # [head, d_head, d_model]
        parts.extend(torch.einsum("...he,hed->h...d", z, w_o).unbind(0))
    labels = [f"L{i}H{h}" for i in range(k) for h in range(cfg.n_heads)]
    if incl_remainder:
        whole = slice_pos(resid(cache, model, k), pos_slice, -2)
        parts.append(whole - torch.stack(parts).sum(0) if parts else whole)
        labels.append("remainder")
    stack = _stack(parts, cache, pos_slice)
    if apply_ln:
        stack = _apply_ln(cache, model, stack, k, pos_slice)
    return _labelled(stack, labels, return_labels)


def apply_ln_to_stack(
    cache: StackCache, stack: Tensor, layer: int | None = None, pos_slice: PosSlice = None
) -> Tensor:
    """The norm reading boundary `layer` (ln1 of that block, or ln_final) applied to each row of
    `stack` with the scale frozen at its cached value: centred (LayerNorm only), divided by the
    scale, times the norm's weight. `pos_slice` is the one the stack was cut with."""
    what = "apply_ln_to_stack"
    model = model_of(cache, what)
    k = boundary(layer, model.cfg.n_layers, what)
    if not isinstance(stack, Tensor) or stack.ndim < 2 or stack.shape[-1] != model.cfg.d_model:
        shape = tuple(stack.shape) if isinstance(stack, Tensor) else type(stack).__name__
        raise InputError(f"{what} takes a stack [n, ..., d_model={model.cfg.d_model}], got {shape}")
    require(cache, _scale_names(model, k), what)
    return _apply_ln(cache, model, stack, k, pos_slice)
