"""Edge attribution patching (EAP) and its integrated-gradients forms (EAP-IG).

EAP (Syed et al.; Hanna et al.) estimates an edge's patching effect to first order:

    score(u -> r) = (out_u - ablated_u) . d metric / d input_r

summed over rows and positions, the gradient taken on the clean run (so the score is the
linearised `full - metric with the edge ablated`, the sign convention of exact patching).

EAP-IG (Hanna et al. 2024) replaces the gradient by its average along a straight path from the
ablated to the clean run, at alpha = k/steps for k = 1..steps:

- on the inputs: the embeddings (and positions) are interpolated, ablated + alpha (clean -
  ablated), and every later activation follows; the averaged gradients score every edge;
- on the activations: for each upstream layer (the embeddings, each layer's heads, each MLP)
  in turn, that layer's outputs are interpolated and everything downstream follows; the
  averaged gradients score the edges out of that layer.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lenscope.discover.context import DiscoveryContext
from lenscope.discover.forward import OutputFn
from lenscope.errors import InputError

Progress = Callable[[int, int], None]
MAX_STEPS = 1000


def check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise InputError(f"--steps is the number of integration steps, 1..{MAX_STEPS}; not {steps}")
    return steps


def receiver_grads(
    ctx: DiscoveryContext, on_outputs: OutputFn | None = None, start_layer: int = 0
) -> tuple[Tensor, int]:
    """d metric / d input_r for every receiver r read in this run: [n_receivers, rows, pos, d]
    (zeros for receivers before `start_layer`) and the index of the first receiver read."""
    g = ctx.graph
    seen: list[tuple[slice, Tensor]] = []

    def grab(sl: slice, x: Tensor) -> Tensor:
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        seen.append((sl, x))
        return x

    start = ctx.states[start_layer] if start_layer > 0 else None
    with torch.enable_grad():
        run = ctx.ef.run(
            ctx.batch.clean,
            start=start,
            on_outputs=on_outputs,
            on_inputs=grab,
            read_at=ctx.read_at,
        )
        value = ctx.metric_of(run.logits)
        grads = torch.autograd.grad(value, [x for _, x in seen], allow_unused=True)
    out = ctx.clean_outputs.new_zeros(len(g.receivers), *ctx.clean_outputs.shape[1:])
    rows = torch.arange(out.shape[1], device=out.device)
    for (sl, _x), gr in zip(seen, grads, strict=True):
        if gr is None:
            continue
        if gr.shape[2] == 1 and out.shape[2] != 1:  # the logits, read at one position per row
            out[sl, rows, ctx.read_at] = gr[:, :, 0]
        else:
            out[sl] = gr
    return out, seen[0][0].start


def _scores(ctx: DiscoveryContext, grads: Tensor, up: slice | None = None) -> Tensor:
    """(out_u - ablated_u) . grad_r as [n_upstream, n_receivers] (rows of `up` only if given)."""
    diff = ctx.clean_outputs - ctx.ablated
    m = torch.zeros(len(ctx.graph.upstream), len(ctx.graph.receivers), dtype=torch.float64)
    sl = up or slice(0, len(ctx.graph.upstream))
    m[sl] = torch.einsum("ubpd,rbpd->ur", diff[sl], grads).double()
    return m


def eap_scores(ctx: DiscoveryContext) -> Tensor:
    """EAP: the first-order estimate of every edge's patching effect [n_edges]."""
    grads, _ = receiver_grads(ctx)
    return ctx.graph.from_matrix(_scores(ctx, grads))


def _interpolate(ctx: DiscoveryContext, group: slice, alpha: float) -> OutputFn:
    abl = ctx.ablated[group]

    def fn(sl: slice, x: Tensor) -> Tensor | None:
        if sl != group:
            return None
        return abl + alpha * (x - abl)

    return fn


def eap_ig_inputs_scores(
    ctx: DiscoveryContext, steps: int = 5, progress: Progress | None = None
) -> Tensor:
    """EAP-IG on the inputs: gradients averaged along the path of the embeddings [n_edges]."""
    check_steps(steps)
    first = slice(0, ctx.graph.n_inputs)
    total: Tensor | None = None
    for k in range(1, steps + 1):
        grads, _ = receiver_grads(ctx, _interpolate(ctx, first, k / steps))
        total = grads if total is None else total + grads
        if progress is not None:
            progress(k, steps)
    assert total is not None
    return ctx.graph.from_matrix(_scores(ctx, total / steps))


def upstream_groups(ctx: DiscoveryContext) -> list[tuple[slice, int]]:
    """Each upstream layer (embeddings, a layer's heads, a layer's MLP) and the layer to start at."""
    g = ctx.graph
    out = [(slice(0, g.n_inputs), 0)]
    for lay in range(g.n_layers):
        out.append((g.heads_upstream(lay), lay))
        if g.has_mlp:
            m = g.mlp_upstream(lay)
            out.append((slice(m, m + 1), lay))
    return out


def eap_ig_activations_scores(
    ctx: DiscoveryContext, steps: int = 5, progress: Progress | None = None
) -> Tensor:
    """EAP-IG on the activations: per upstream layer, gradients averaged along the path of that
    layer's outputs [n_edges]."""
    check_steps(steps)
    m = torch.zeros(len(ctx.graph.upstream), len(ctx.graph.receivers), dtype=torch.float64)
    groups = upstream_groups(ctx)
    done, total_runs = 0, steps * len(groups)
    for group, layer in groups:
        acc: Tensor | None = None
        for k in range(1, steps + 1):
            grads, _ = receiver_grads(ctx, _interpolate(ctx, group, k / steps), start_layer=layer)
            acc = grads if acc is None else acc + grads
            done += 1
            if progress is not None:
                progress(done, total_runs)
        assert acc is not None
        m[group] = _scores(ctx, acc / steps, group)[group]
    return ctx.graph.from_matrix(m)
