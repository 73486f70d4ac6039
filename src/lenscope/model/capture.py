"""One activation capture: run a model over tokens and keep the tensors at chosen hook points.

    acts = capture(model, tokens, "blocks.2.hook_resid_post")            # [batch, pos, d]
    for batch in iter_activations(model, windows, ["blocks.2.hook_resid_post"], batch_size=8):
        batch["blocks.2.hook_resid_post"]                                   # [rows, d] per batch

`tap` is the primitive under every capture (records, SAE training and evaluation, the debugger's
forward and backward pass): forward hooks that hand what passes a set of hook points to a
callback; `recorder` keeps it.
Every forward stops after the last block a requested hook lies in. Per-head hooks (`hook_z`,
`hook_q`, ...) are flattened to one vector per token. Widths come from the model's config
(`hook_width`), never from a forward pass. A dictionary's encoder enters as a plain callable, so
this module knows nothing of the instruments above it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.model.config import ModelConfig
from lenscope.model.hooks import HookSpec
from lenscope.model.transformer import HookedTransformer

Encode = Callable[[Tensor], Tensor]  # [rows, d_in] -> [rows, d_sae]

NOT_PER_TOKEN = ("hook_pattern", "hook_attn_scores")
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_STREAM = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out")
_STREAM = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out")
_LN = re.compile(r"^(?:ln1|ln2|ln_final)\.(hook_scale|hook_normalized)$")


def check_hook(model: HookedTransformer, hook: str) -> None:
    """`InputError` unless `hook` is a per-token hook point of `model`."""
    if hook not in model.hook_dict:
        tail = hook.split(".")[-1]
        close = [n for n in model.hook_dict if tail and tail in n][:3]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InputError(
            f"{model.cfg.name} has no hook point {hook!r}{hint} "
            "(names look like blocks.0.hook_resid_post)"
        )
    if hook.endswith(NOT_PER_TOKEN):
        raise InputError(f"{hook} is not one vector per token; SAEs read per-token activations")


def hook_width(cfg: ModelConfig, hook: str) -> int:
    """The per-token width of the activations at `hook` (per-head hooks flattened), from `cfg`."""
    return _width(cfg, hook)[0]


def width_source(cfg: ModelConfig, hook: str) -> str:
    """Which config quantity gives `hook`'s width, for messages: `d_model`, `n_heads*d_head`..."""
    return _width(cfg, hook)[1]


def _width(cfg: ModelConfig, hook: str) -> tuple[int, str]:
    m = _BLOCK.match(hook)
    leaf = m.group(2) if m else hook
    if leaf.endswith(NOT_PER_TOKEN):
        raise InputError(f"{hook} is not one vector per token")
    if ln := _LN.match(leaf) or _LN.match(hook):
        return (1, "1") if ln.group(1) == "hook_scale" else (cfg.d_model, "d_model")
    if leaf in ("hook_embed", "hook_pos_embed") or (m is not None and leaf in _STREAM):
        return cfg.d_model, "d_model"
    if m is not None and leaf in ("attn.hook_q", "attn.hook_rot_q", "attn.hook_z"):
        return cfg.n_heads * cfg.d_head, "n_heads*d_head"
    if m is not None and leaf in ("attn.hook_k", "attn.hook_rot_k", "attn.hook_v"):
        return cfg.n_kv_heads * cfg.d_head, "n_kv_heads*d_head"
    if m is not None and leaf in ("mlp.hook_pre", "mlp.hook_pre_linear", "mlp.hook_post"):
        if cfg.attn_only:
            raise InputError(f"{cfg.name} is attention-only; it has no {hook}")
        return cfg.d_mlp, "d_mlp"
    raise InputError(f"{hook!r} is not a per-token hook point name (like blocks.0.hook_resid_post)")


def stop_layer(hook: str, n_layers: int) -> int | None:
    """The smallest `stop_at_layer` whose forward still reaches `hook` (None: the full model)."""
    m = _BLOCK.match(hook)
    if m is not None:
        return min(int(m.group(1)) + 1, n_layers)
    if hook in ("hook_embed", "hook_pos_embed"):
        return 0
    return None


def stop_for(hooks: Iterable[str], n_layers: int) -> int | None:
    """The smallest `stop_at_layer` that reaches every hook in `hooks`."""
    stops = [stop_layer(h, n_layers) for h in hooks]
    return None if not stops or None in stops else max(s for s in stops if s is not None)


def flatten_act(a: Tensor) -> Tensor:
    """[batch, pos, ...] -> [batch, pos, d]: per-head hooks (hook_z, hook_q, ...) are flattened."""
    return a.reshape(*a.shape[:2], -1) if a.ndim > 3 else a


def tap(hooks: Iterable[str], fn: Callable[[str, Tensor], None]) -> list[HookSpec]:
    """Forward hooks that call `fn(name, x)` at every hook point in `hooks` and pass the
    activation on unchanged (streaming consumers: statistics computed inside the forward)."""

    def call(x: Tensor, hook: Any) -> None:
        fn(hook.name, x)

    return [(name, call) for name in hooks]


def recorder(
    store: dict[str, Tensor],
    hooks: Iterable[str],
    transform: Callable[[Tensor], Tensor] | None = None,
) -> list[HookSpec]:
    """Forward hooks that keep `store[name] = transform(x)` (default: x itself, not detached)
    for every hook point in `hooks`, passing the activation on unchanged."""

    def keep(name: str, x: Tensor) -> None:
        store[name] = x if transform is None else transform(x)

    return tap(hooks, keep)


@torch.no_grad()
def capture_all(
    model: HookedTransformer,
    tokens: Tensor,
    hooks: Sequence[str],
    *,
    encode: Mapping[str, Encode] | None = None,
    attention_mask: Tensor | None = None,
) -> dict[str, Tensor]:
    """Per hook, the activations [batch, pos, d] for token ids [batch, pos] (for a hook in
    `encode`: the encoded activations [batch, pos, d_sae]), from one forward pass."""
    store: dict[str, Tensor] = {}
    with model.hooks(fwd=recorder(store, hooks, Tensor.detach)):
        model(
            tokens, attention_mask=attention_mask, stop_at_layer=stop_for(hooks, model.cfg.n_layers)
        )
    out: dict[str, Tensor] = {}
    for h in hooks:
        if h not in store:
            raise InputError(f"the forward pass never reached {h}")
        a = flatten_act(store[h])
        if encode is not None and h in encode:
            a = encode[h](a.reshape(-1, a.shape[-1])).reshape(*a.shape[:2], -1)
        out[h] = a
    return out


def capture(model: HookedTransformer, tokens: Tensor, hook: str) -> Tensor:
    """The activations [batch, pos, d] at `hook` for token ids [batch, pos]."""
    return capture_all(model, tokens, [hook])[hook]


def iter_activations(
    model: HookedTransformer,
    windows: Iterable[Tensor],
    hooks: Sequence[str],
    *,
    batch_size: int,
    encode: Mapping[str, Encode] | None = None,
) -> Iterator[dict[str, Tensor]]:
    """Per batch of `batch_size` windows (token ids [rows, ctx] from `windows`), the
    activations at `hooks` as [batch * ctx, d] rows on the CPU; memory holds one batch."""
    if batch_size < 1:
        raise InputError("batch_size must be at least 1")
    pending: list[Tensor] = []

    def flush() -> dict[str, Tensor]:
        toks = torch.cat(pending).to(model.device)
        pending.clear()
        got = capture_all(model, toks, hooks, encode=encode)
        return {h: a.reshape(-1, a.shape[-1]).cpu() for h, a in got.items()}

    for w in windows:
        for row in w.reshape(-1, w.shape[-1]).split(1):
            pending.append(row)
            if len(pending) == batch_size:
                yield flush()
    if pending:
        yield flush()
