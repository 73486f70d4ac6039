"""Splicing an SAE into a model at its hook point, and latents as debugger nodes.

    with splice(model, sae, keep_error=True):
        logits, cache = model.run_with_cache(tokens, names_filter="*.sae.hook_acts")
        cache["blocks.2.hook_resid_post.sae.hook_acts"]          # [batch, pos, d_sae]

Inside the block the activation at `sae.cfg.hook_name` is replaced by the SAE's output: its
reconstruction, or (keep_error=True) reconstruction + error term, which equals the original
activation, so the model's output is unchanged while every latent becomes a hook point that can
be read, ablated or differentiated (`<hook>.sae.hook_acts`, `.hook_recons`, `.hook_error`, ...).
The error term depends on the activation but not on the hooked latents: gradients at hook_acts
hold the error fixed (a latent's attribution), gradients to earlier layers stay the model's own.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from torch import Tensor

from lenscope.errors import InputError
from lenscope.model import HookedTransformer, HookPoint, fingerprint
from lenscope.nodes import LATENT_SITES, NodeId, NodeKind
from lenscope.sae.data import check_hook
from lenscope.sae.model import HOOK_NAMES, SparseAutoencoder

_NODE = re.compile(r"^(?:L(\d+)\.)?([A-Za-z_.]+)\.F(\d+)$")
_HOOK = re.compile(r"^blocks\.(\d+)\.(hook_[a-z_]+)$")
_SITES = {hook: site for site, hook in LATENT_SITES.items()}


def sae_hook_name(hook_name: str, hook: str = "hook_acts") -> str:
    """The model-level name of an SAE hook while spliced: `blocks.2.hook_resid_post.sae.hook_acts`."""
    return f"{hook_name}.sae.{hook}"


def check_compatible(model: HookedTransformer, sae: SparseAutoencoder, strict: bool = True) -> None:
    """`InputError` if the SAE cannot read the model's activations at its hook point."""
    from lenscope.sae.data import hook_width

    hook = sae.cfg.hook_name
    if not hook:
        raise InputError("the SAE records no hook point; set its cfg.hook_name first")
    check_hook(model, hook)
    width = hook_width(model, hook)
    if width != sae.cfg.d_in:
        raise InputError(
            f"the SAE reads d_in = {sae.cfg.d_in} but {model.cfg.name}'s {hook} is "
            f"{width}-dimensional; use an SAE trained on this model and hook"
        )
    want = sae.cfg.model_fingerprint
    if strict and want and want != fingerprint(model):
        raise InputError(
            f"the SAE was trained on a model with fingerprint {want} ({sae.cfg.model_name}), "
            f"not on this {model.cfg.name} ({fingerprint(model)}); pass strict=False (--force) "
            "to use it anyway"
        )


@contextlib.contextmanager
def splice(
    model: HookedTransformer,
    sae: SparseAutoencoder,
    *,
    keep_error: bool = False,
    strict: bool = True,
) -> Iterator[SparseAutoencoder]:
    """Replace the activation at the SAE's hook point by the SAE's output while the block runs."""
    check_compatible(model, sae, strict)
    hook = sae.cfg.hook_name
    sae_hooks: dict[str, HookPoint] = {}
    for short in HOOK_NAMES:
        hp: HookPoint = getattr(sae, short)
        full = sae_hook_name(hook, short)
        if full in model.hook_dict:
            raise InputError(f"an SAE is already spliced at {hook}; splice one SAE per hook point")
        hp.name = full
        sae_hooks[full] = hp

    def replace(x: Tensor, _hook: HookPoint) -> Tensor:
        flat = x.reshape(*x.shape[:2], -1) if x.ndim > 3 else x
        out: Tensor = sae(flat, keep_error=keep_error)
        return out.reshape(x.shape)

    model.hook_dict.update(sae_hooks)
    try:
        with model.hooks(fwd=[(hook, replace)]):
            yield sae
    finally:
        for full, hp in sae_hooks.items():
            model.hook_dict.pop(full, None)
            hp.name = full.rsplit(".", 1)[-1]


def latent_node_id(hook_name: str, latent: int) -> str:
    """The debugger's node id of a latent: blocks.6.hook_resid_post, 1234 -> L6.resid_post.F1234.

    Residual-stream hooks give `lenscope.nodes` ids (the debugger's nodes); other hooks (per-head
    `attn.hook_z`, `mlp.hook_post`, ...) get the same spelling extended to their dotted place,
    readable by `parse_latent_node_id` but not debugger nodes."""
    m = _HOOK.match(hook_name)
    if m and m.group(2) in _SITES:
        node = NodeId(NodeKind.LATENT, int(m.group(1)), latent, _SITES[m.group(2)])
        return str(node)
    m = re.match(r"^blocks\.(\d+)\.(.*)$", hook_name)
    if m:
        place = f"L{m.group(1)}." + m.group(2).replace("hook_", "")
    else:
        place = hook_name.replace("hook_", "")
    return f"{place}.F{latent}"


def parse_latent_node_id(node: str) -> tuple[str, int]:
    """Inverse of `latent_node_id`: L6.resid_post.F1234 -> (blocks.6.hook_resid_post, 1234)."""
    try:
        parsed = NodeId.parse(node)
    except InputError:
        parsed = None
    if parsed is not None:
        if parsed.kind is not NodeKind.LATENT or parsed.position is not None:
            raise InputError(f"{node!r} is not an SAE latent id (like L6.resid_post.F1234)")
        assert parsed.index is not None
        return parsed.hook_name, parsed.index
    m = _NODE.match(node)
    if m is None:
        raise InputError(f"{node!r} is not an SAE latent id (like L6.resid_post.F1234)")
    layer, place, idx = m.groups()
    parts = place.split(".")
    parts[-1] = "hook_" + parts[-1]
    name = ".".join(parts)
    return (f"blocks.{layer}.{name}" if layer is not None else name), int(idx)
