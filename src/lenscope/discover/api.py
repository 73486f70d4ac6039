"""`discover`: score every edge of a model's graph for a task, choose a circuit, measure it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from lenscope.discover import acdc as acdc_mod
from lenscope.discover import eap, faithful, select
from lenscope.discover.context import DiscoveryContext
from lenscope.discover.patch import patch_scores
from lenscope.discover.result import (
    METHODS,
    DiscoverResult,
    EdgeScore,
    Faithfulness,
    Method,
    circuit_nodes,
)
from lenscope.discover.tasks import CircuitTask, Metric, load_task
from lenscope.errors import InputError
from lenscope.model.transformer import HookedTransformer

Selection = Literal["top-n", "threshold", "greedy"]
SELECTIONS: tuple[Selection, ...] = ("top-n", "threshold", "greedy")
StageProgress = Callable[[str, int, int], None]  # (stage, done, total)
DEFAULT_STEPS = 5
DEFAULT_TAU = 0.1


def check_method(method: str) -> Method:
    if method not in METHODS:
        raise InputError(f"method {method!r} is not one of {', '.join(METHODS)}")
    return method


def score_edges(
    ctx: DiscoveryContext,
    method: Method,
    steps: int = DEFAULT_STEPS,
    tau: float = DEFAULT_TAU,
    progress: StageProgress | None = None,
) -> tuple[Tensor, Tensor | None]:
    """(scores [n_edges], ACDC's kept edges or None)."""

    def cb(done: int, total: int) -> None:
        if progress is not None:
            progress(method, done, total)

    if method == "patch":
        return patch_scores(ctx, cb), None
    if method == "eap":
        return eap.eap_scores(ctx), None
    if method == "eap-ig":
        return eap.eap_ig_inputs_scores(ctx, steps, cb), None
    if method == "eap-ig-act":
        return eap.eap_ig_activations_scores(ctx, steps, cb), None
    return acdc_mod.acdc(ctx, tau, cb)


def discover(
    model: HookedTransformer,
    task: CircuitTask | str,
    method: str = "eap-ig",
    ablation: str = "resample",
    *,
    steps: int = DEFAULT_STEPS,
    tau: float | None = None,
    top_n: int | None = None,
    selection: str = "top-n",
    threshold: float | None = None,
    metric: Metric | None = None,
    max_rows: int | None = None,
    points: int = 40,
    progress: StageProgress | None = None,
) -> DiscoverResult:
    """Score every edge with `method` under `ablation`, choose a circuit and measure it.

    The circuit is the top `top_n` edges by |score| (`selection="top-n"`), the edges with
    |score| >= `threshold`, or `top_n` edges grown greedily from the logits; without `top_n`,
    n is the smallest top-n reaching 90% of the full model (else 80%, else every edge). ACDC's
    circuit is the edges it kept, unless `top_n` is given."""
    m = check_method(method)
    if selection not in SELECTIONS:
        raise InputError(f"selection {selection!r} is not one of {', '.join(SELECTIONS)}")
    if m in ("eap-ig", "eap-ig-act"):
        eap.check_steps(steps)
    tau_v = acdc_mod.check_tau(DEFAULT_TAU if tau is None else tau) if m == "acdc" else None
    if tau is not None and m != "acdc":
        raise InputError(f"--tau is ACDC's threshold; method {m} takes none")
    if selection == "threshold" and threshold is None:
        raise InputError("selection 'threshold' needs a threshold")
    t = load_task(task, model, metric) if isinstance(task, str) else task
    if max_rows is not None:
        if max_rows < 1:
            raise InputError(f"max_rows is at least 1, not {max_rows}")
        t = t.head(max_rows)
    ctx = DiscoveryContext.build(model, t, ablation, metric)
    g = ctx.graph
    if top_n is not None:
        select.check_n(top_n, g.n_edges)
    start = time.perf_counter()
    scores, kept = score_edges(ctx, m, steps, tau_v or 0.0, progress)
    seconds = time.perf_counter() - start

    def cb(done: int, total: int) -> None:
        if progress is not None:
            progress("faithfulness", done, total)

    curve, area, n80, n90 = faithful.faithfulness_curve(ctx, scores, points, cb)
    if kept is not None and top_n is None:
        keep, how = kept, f"acdc tau={tau_v:g}"
    elif selection == "threshold":
        assert threshold is not None
        keep, how = select.threshold(scores, threshold), f"threshold {threshold:g}"
    else:
        n = top_n or n90 or n80 or g.n_edges
        if selection == "greedy":
            keep, how = select.greedy(g, scores, n), f"greedy {n}"
        else:
            keep, how = select.top_n(scores, n), f"top-n {n}"
    order = torch.argsort(-scores.abs(), stable=True).tolist()
    edges = [
        EdgeScore(
            g.edge_name(k),
            g.upstream[int(g.edge_up[k])].node_id,
            g.receivers[int(g.edge_recv[k])].node.node_id,
            g.receivers[int(g.edge_recv[k])].channel,
            float(scores[k]),
            bool(keep[k]),
        )
        for k in order
    ]
    circuit = [e.edge for e in edges if e.in_circuit]
    faith = Faithfulness(
        curve,
        area,
        n80,
        n90,
        faithful.circuit_fraction(ctx, keep),
        faithful.completeness(ctx, keep),
        ctx.full_value,
        ctx.empty_value,
        g.n_edges,
    )
    return DiscoverResult(
        model=model.cfg.name,
        task=t.name,
        method=m,
        ablation=ctx.ablation,
        metric=ctx.metric,
        n_rows=len(t.rows),
        steps=steps if m in ("eap-ig", "eap-ig-act") else None,
        tau=tau_v,
        selection=how,
        n_edges=g.n_edges,
        circuit=circuit,
        edges=edges,
        faithfulness=faith,
        seconds=seconds,
        nodes=circuit_nodes(g, set(circuit)),
    )
