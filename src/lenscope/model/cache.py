"""`ActivationCache`: the activations of one forward pass, keyed by hook name."""

from __future__ import annotations

import re
from collections.abc import Iterator

from torch import Tensor

import lenscope.model.stacks as stacks
from lenscope.errors import InputError
from lenscope.model.stacks import StackModel

_BLOCK_HOOKS = {
    "resid_pre": "hook_resid_pre",
    "resid_mid": "hook_resid_mid",
    "resid_post": "hook_resid_post",
    "attn_out": "hook_attn_out",
    "mlp_out": "hook_mlp_out",
    "q": "attn.hook_q",
    "k": "attn.hook_k",
    "v": "attn.hook_v",
    "z": "attn.hook_z",
    "rot_q": "attn.hook_rot_q",
    "rot_k": "attn.hook_rot_k",
    "attn_scores": "attn.hook_attn_scores",
    "pattern": "attn.hook_pattern",
    "pre": "mlp.hook_pre",
    "pre_linear": "mlp.hook_pre_linear",
    "post": "mlp.hook_post",
    "scale1": "ln1.hook_scale",
    "scale2": "ln2.hook_scale",
}


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def act_name(kind: str, layer: int | None = None) -> str:
    """Full hook name from a short one, as TransformerLens' `get_act_name`: ("resid_post", 3)."""
    if layer is None:
        if kind in ("embed", "pos_embed"):
            return f"hook_{kind}"
        if kind in ("scale", "ln_final"):
            return "ln_final.hook_scale"
        return kind
    if kind not in _BLOCK_HOOKS:
        raise InputError(f"unknown activation kind {kind!r}; known: {', '.join(_BLOCK_HOOKS)}")
    return f"blocks.{layer}.{_BLOCK_HOOKS[kind]}"


class ActivationCache:
    """A read-only mapping from hook name to activation, with TransformerLens-style short keys.

    With the `model` it came from, it also stacks residual-stream pieces as TransformerLens'
    cache does (`accumulated_resid`, `decompose_resid`, `stack_head_results`,
    `apply_ln_to_stack`; see `lenscope.model.stacks` for the semantics). `model` is a
    `HookedTransformer`, typed by what the stacks read from it (`stacks.StackModel`), so that
    this module does not import the transformer that makes caches.
    """

    def __init__(
        self, acts: dict[str, Tensor], n_layers: int, model: StackModel | None = None
    ) -> None:
        if model is not None and model.cfg.n_layers != n_layers:
            raise InputError(f"n_layers={n_layers} but the model has {model.cfg.n_layers} layers")
        self._acts = acts
        self.n_layers = n_layers
        self.model = model

    def _key(self, key: str | tuple[str, int]) -> str:
        if isinstance(key, tuple):
            if len(key) != 2 or not isinstance(key[0], str) or not _is_int(key[1]):
                raise InputError(f"a cache key is a hook name or (kind, layer), got {key!r}")
            kind, layer = key
            return act_name(kind, self._layer(layer))
        if not isinstance(key, str):
            raise InputError(f"a cache key is a hook name or (kind, layer), got {key!r}")
        m = re.match(r"blocks\.(\d+)\.", key)
        if m:
            self._layer(int(m.group(1)))
        return key

    def _layer(self, layer: int) -> int:
        n = self.n_layers
        if not -n <= layer < n:
            raise InputError(
                f"layer {layer} is out of range: the model has {n} layer{'s' * (n != 1)} "
                f"(0..{n - 1}, or -{n}..-1 from the end)"
            )
        return layer + n if layer < 0 else layer

    def __getitem__(self, key: str | tuple[str, int]) -> Tensor:
        name = self._key(key)
        try:
            return self._acts[name]
        except KeyError:
            raise InputError(
                f"{name!r} is not in this cache; it holds {len(self._acts)} hooks "
                f"(e.g. {', '.join(list(self._acts)[:3])}); widen names_filter"
            ) from None

    def __contains__(self, key: object) -> bool:
        if isinstance(key, (str, tuple)):
            try:
                return self._key(key) in self._acts
            except InputError:
                return False
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._acts)

    def __len__(self) -> int:
        return len(self._acts)

    def keys(self) -> list[str]:
        return list(self._acts)

    def items(self) -> list[tuple[str, Tensor]]:
        return list(self._acts.items())

    def to_dict(self) -> dict[str, Tensor]:
        return dict(self._acts)

    def __repr__(self) -> str:
        return f"ActivationCache({len(self._acts)} activations)"

    # ---- stacks of residual-stream pieces (lenscope.model.stacks: the signatures and semantics)
    accumulated_resid = stacks.accumulated_resid
    decompose_resid = stacks.decompose_resid
    stack_head_results = stacks.stack_head_results
    apply_ln_to_stack = stacks.apply_ln_to_stack
