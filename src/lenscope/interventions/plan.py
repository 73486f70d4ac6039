"""Compile an `InterventionSet` into a `Plan`: edits per hook point, ready to hook a private view.

Sources (resample, patch) are clean runs of their prompt; means (mean ablation) are averages over
every real token of `InterventionSet.reference`. Positions must exist in every prompt of the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.interventions.edits import Edit, apply_all, fit_positions
from lenscope.interventions.prompts import PromptBatch, encode_prompts
from lenscope.interventions.spec import Ablate, Clamp, InterventionSet, Patch, Prompt, Steer
from lenscope.model.hooks import HookSpec
from lenscope.model.transformer import HookedTransformer
from lenscope.nodes import NodeId, NodeKind
from lenscope.sae.dictionary import Dictionary, splice

HookFn = Callable[[Tensor, Any], Tensor]
_PAIRWISE = ("hook_pattern", "hook_attn_scores")


@dataclass
class Plan:
    edits: dict[str, list[Edit]] = field(default_factory=dict)  # model hook -> edits
    latent_edits: dict[str, list[Edit]] = field(default_factory=dict)  # SAE hook -> latent edits

    def add(self, hook: str, edit: Edit, latent: bool = False) -> None:
        (self.latent_edits if latent else self.edits).setdefault(hook, []).append(edit)

    def merged(self, other: Plan) -> Plan:
        out = Plan({k: list(v) for k, v in self.edits.items()}, {})
        out.latent_edits = {k: list(v) for k, v in self.latent_edits.items()}
        for k, v in other.edits.items():
            out.edits.setdefault(k, []).extend(v)
        for k, v in other.latent_edits.items():
            out.latent_edits.setdefault(k, []).extend(v)
        return out

    def hooks(
        self,
        latents: Mapping[str, Dictionary],
        sink: MutableMapping[str, Tensor] | None = None,
    ) -> list[HookSpec]:
        """Forward hooks in order: edits first, then SAE splices (which see the edited stream)."""
        specs: list[HookSpec] = []
        for hook, edits in self.edits.items():
            specs.append((hook, _editor(edits)))
        for hook, src in latents.items():
            ledits = self.latent_edits.get(hook, [])
            if ledits or sink is not None:
                edit = _latent_editor(ledits) if ledits else None
                specs += splice(src, keep_error=True, edit=edit, sink=sink)
        missing = set(self.latent_edits) - set(latents)
        if missing:
            raise InputError(
                f"latent interventions at {', '.join(missing)} need an SAE (or transcoder) there"
            )
        return specs


def _latent_editor(edits: list[Edit]) -> Callable[[Tensor], Tensor]:
    def fn(f: Tensor) -> Tensor:
        return apply_all(f, edits)

    return fn


def _editor(edits: list[Edit]) -> HookFn:
    def fn(x: Tensor, hook: Any) -> Tensor:
        return apply_all(x, edits)

    return fn


def node_target(node: NodeId) -> tuple[str, dict[int, list[int]], bool]:
    """(hook, selection, is_latent) of a node's activation: the entries an ablation replaces."""
    sel: dict[int, list[int]] = {}
    if node.kind is NodeKind.HEAD and node.key_position is not None:
        assert node.index is not None and node.position is not None
        return node.hook_name, {1: [node.index], 2: [node.position], 3: [node.key_position]}, False
    if node.position is not None:
        sel[1] = [node.position]
    if node.kind in (NodeKind.HEAD, NodeKind.NEURON, NodeKind.EXPERT, NodeKind.LATENT):
        assert node.index is not None
        sel[2] = [node.index]
    return node.hook_name, sel, node.kind is NodeKind.LATENT


def check_node(
    model: HookedTransformer, node: NodeId, latents: Mapping[str, Dictionary], n_tokens: int
) -> NodeId:
    cfg = model.cfg
    return node.check(
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        d_mlp=None if cfg.attn_only else cfg.d_mlp,
        has_pos=model.W_pos is not None,
        latent_sizes={h: s.d_sae for h, s in latents.items()},
        n_tokens=n_tokens,
        n_experts=cfg.num_experts + (1 if cfg.d_mlp_shared else 0),
    )


def _flat(x: Tensor) -> Tensor:
    """Per-head activations (hook_z) as one vector per token, as `splice` reads them."""
    return x.reshape(*x.shape[:2], -1) if x.ndim > 3 else x


class Sources:
    """Clean activations of source prompts and means over the reference prompts, computed once."""

    def __init__(
        self, model: HookedTransformer, latents: Mapping[str, Dictionary], reference: Any
    ) -> None:
        self.model, self.latents, self.reference = model, latents, reference
        self._runs: dict[Any, tuple[dict[str, Tensor], int]] = {}

    def _capture(self, batch: PromptBatch, hooks: Sequence[str]) -> dict[str, Tensor]:
        # a transcoder's latents are keyed `blocks.l.transcoder`: read the hook it reads
        real = {h: self.latents[h].hook_in if h in self.latents else h for h in hooks}
        with torch.no_grad():
            _, cache = self.model.run_with_cache(
                batch.tokens, names_filter=sorted(set(real.values())), attention_mask=batch.mask
            )
        out = {}
        for h in hooks:
            out[h] = cache[real[h]]
            if h in self.latents:
                out[h + "#latents"] = self.latents[h].latents(_flat(cache[real[h]]))
        return out

    def run(self, prompt: Prompt, key: str, hooks: Sequence[str]) -> tuple[Tensor, int]:
        k = (prompt if isinstance(prompt, str) else tuple(prompt), key)
        if k not in self._runs:
            batch = encode_prompts(self.model, [prompt])
            self._runs[k] = (self._capture(batch, hooks), batch.lengths[0])
        acts, n = self._runs[k]
        return acts[key], n

    def mean(self, hook: str, latent: bool) -> Tensor:
        if not self.reference:
            raise InputError(
                "mean ablation needs reference prompts (the intervention set's `reference`); "
                "give some or ablate by zero"
            )
        batch = encode_prompts(self.model, list(self.reference))
        act = self._capture(batch, [hook])[hook + "#latents" if latent else hook]
        m = (
            torch.ones(act.shape[:2], device=act.device)
            if batch.mask is None
            else batch.mask.to(act.device)
        )
        w = m.to(act.dtype).reshape(*m.shape, *([1] * (act.ndim - 2)))
        mean = (act * w).sum((0, 1)) / w.sum((0, 1))
        return mean.reshape(1, 1, *mean.shape)


def compile_plan(
    model: HookedTransformer,
    spec: InterventionSet | None,
    batch: PromptBatch,
    latents: Mapping[str, Dictionary],
) -> Plan:
    plan = Plan()
    if not spec:
        return plan
    sources = Sources(model, latents, spec.reference)
    n_min, width = min(batch.lengths), batch.width
    for i, item in enumerate(spec.interventions):
        what = f"intervention {i} ({item.type})"
        if isinstance(item, Ablate):
            _ablate(model, plan, sources, item, n_min, width, latents)
        elif isinstance(item, Patch):
            _patch(model, plan, sources, item, n_min, width, what)
        elif isinstance(item, Clamp):
            _clamp(model, plan, item, n_min, latents)
        else:
            _steer(model, plan, item, n_min, latents, what)
    return plan


def _check_positions(positions: Sequence[int] | None, n_min: int, what: str) -> None:
    for p in positions or ():
        if not 0 <= p < n_min:
            raise InputError(
                f"{what}: position {p} is beyond the prompt (the shortest prompt has {n_min} "
                f"tokens, positions 0..{n_min - 1})"
            )


def _ablate(
    model: HookedTransformer,
    plan: Plan,
    sources: Sources,
    item: Ablate,
    n_min: int,
    width: int,
    latents: Mapping[str, Dictionary],
) -> None:
    node = check_node(model, NodeId.parse(item.node), latents, n_min)
    hook, sel, is_latent = node_target(node)
    what = f"ablating {node}"
    if node.granularity == "pair" and item.mode != "zero":
        raise InputError(f"{what}: token-pair nodes can only be zero-ablated")
    value: Tensor | float = 0.0
    if item.mode == "mean":
        value = sources.mean(hook, is_latent)
    elif item.mode == "resample":
        assert item.source is not None
        act, n_src = sources.run(item.source, hook + ("#latents" if is_latent else ""), [hook])
        need = (node.position + 1) if node.position is not None else width
        if n_src < need:
            raise InputError(
                f"{what}: the resample source has {n_src} tokens but {need} are needed; give a "
                "longer source or ablate at one position"
            )
        value = fit_positions(act, width, (1,))
    plan.add(hook, Edit(sel, value, what=what), latent=is_latent)


def _clamp(
    model: HookedTransformer,
    plan: Plan,
    item: Clamp,
    n_min: int,
    latents: Mapping[str, Dictionary],
) -> None:
    node = check_node(model, NodeId.parse(item.node), latents, n_min)
    if node.kind not in (NodeKind.NEURON, NodeKind.LATENT):
        raise InputError(f"clamping {node}: only neurons and SAE/transcoder latents are clamped")
    hook, sel, is_latent = node_target(node)
    plan.add(hook, Edit(sel, item.value, what=f"clamping {node}"), latent=is_latent)


def _patch(
    model: HookedTransformer,
    plan: Plan,
    sources: Sources,
    item: Patch,
    n_min: int,
    width: int,
    what: str,
) -> None:
    if item.hook not in model.hook_dict:
        near = [h for h in model.hook_dict if item.hook.split(".")[-1] in h][:3]
        hint = f"; e.g. {', '.join(near)}" if near else ""
        raise InputError(f"{what}: no hook point named {item.hook!r}{hint}")
    _check_positions(item.positions, n_min, what)
    pairwise = item.hook.endswith(_PAIRWISE)
    act, n_src = sources.run(item.source, item.hook, [item.hook])
    need = max(item.positions) + 1 if item.positions else width
    if pairwise:
        need = width
    if n_src < need:
        raise InputError(
            f"{what}: the source prompt has {n_src} tokens but {need} are needed; give a longer "
            "source or fewer positions"
        )
    dims = (2, 3) if pairwise else (1,)
    sel = {2 if pairwise else 1: list(item.positions)} if item.positions else {}
    plan.add(item.hook, Edit(sel, fit_positions(act, width, dims), what=what))


def _steer(
    model: HookedTransformer,
    plan: Plan,
    item: Steer,
    n_min: int,
    latents: Mapping[str, Dictionary],
    what: str,
) -> None:
    _check_positions(item.positions, n_min, what)
    if item.latent is not None:
        node = check_node(model, NodeId.parse(item.latent), latents, n_min)
        if node.kind is not NodeKind.LATENT:
            raise InputError(f"{what}: {node} is not an SAE latent")
        src = latents[node.hook_name]
        if not src.is_sae and item.hook is None:
            # a transcoder latent: add to its activation in the splice, so that its decoder rows
            # are written (times the dictionary's input scale) into every hook it writes
            sel = {1: list(item.positions)} if item.positions else {}
            edit = Edit({**sel, 2: [node.index or 0]}, item.coefficient, add=True, what=what)
            plan.add(node.hook_name, edit, latent=True)
            return
        if not src.is_sae and len(src.hooks_out) > 1:
            raise InputError(f"{what}: {node} writes several hooks; leave the hook out")
        direction = (src.W_dec if src.is_sae else src.decoders[0])[node.index or 0].detach()
        hook = item.hook or node.hook_name
    else:
        assert item.vector is not None and item.hook is not None
        direction = torch.tensor(
            item.vector, dtype=torch.float64, device="cpu"
        )  # moved when applied
        hook = item.hook
    if hook not in model.hook_dict:
        raise InputError(f"{what}: no hook point named {hook!r}")
    sel = {1: list(item.positions)} if item.positions else {}
    plan.add(hook, Edit(sel, direction * item.coefficient, add=True, what=what))
