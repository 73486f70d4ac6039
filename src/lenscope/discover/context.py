"""One task on one model with one ablation: the clean run and the metric under any edge mask."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lenscope.discover.ablate import Ablation, ablated_outputs, check_ablation
from lenscope.discover.forward import EdgeForward, ForwardState
from lenscope.discover.graph import EdgeGraph
from lenscope.discover.tasks import (
    CircuitTask,
    Metric,
    TaskBatch,
    batch_of,
    last_logits,
    metric_value,
)
from lenscope.model.transformer import HookedTransformer


@dataclass
class DiscoveryContext:
    """Everything the methods share. `ablate` masks are [n_upstream, n_receivers] with 1 on
    ablated edges; `value(mask)` is the metric with those edges ablated."""

    ef: EdgeForward
    task: CircuitTask
    batch: TaskBatch
    ablation: Ablation
    metric: Metric
    ablated: Tensor  # [n_upstream, rows | 1, pos | 1, d]
    clean_outputs: Tensor  # [n_upstream, rows, pos, d]
    states: list[
        ForwardState
    ]  # the clean run's state at each layer's start (and before the logits)
    clean_logprobs: Tensor  # [rows, vocab] at each row's last position
    full_value: float  # the metric of the full model
    _empty: float | None = None

    @classmethod
    def build(
        cls,
        model: HookedTransformer,
        task: CircuitTask,
        ablation: str,
        metric: Metric | None = None,
    ) -> DiscoveryContext:
        ef = EdgeForward(model)
        batch = batch_of(task, model.device)
        abl = check_ablation(ablation, batch)
        chosen = metric or task.metric
        with torch.no_grad():
            ablated = ablated_outputs(ef, batch, abl)
            run = ef.run(
                batch.clean, keep_outputs=True, keep_states=True, read_at=batch.clean_len - 1
            )
        assert run.outputs is not None and run.states is not None
        lp = last_logits(run.logits, batch.clean_len).float().log_softmax(-1)
        full = float(metric_value(run.logits, batch, chosen, lp))
        return cls(ef, task, batch, abl, chosen, ablated, run.outputs, run.states, lp, full)

    @property
    def empty_value(self) -> float:
        """The metric with every edge ablated (computed once, when first asked)."""
        if self._empty is None:
            self._empty = self.value(self.graph.valid.to(self.ablated.dtype))
        return self._empty

    @property
    def read_at(self) -> Tensor:
        """Each row's last position, where the metric reads the logits."""
        return self.batch.clean_len - 1

    @property
    def graph(self) -> EdgeGraph:
        return self.ef.graph

    def metric_of(self, logits: Tensor) -> Tensor:
        return metric_value(logits, self.batch, self.metric, self.clean_logprobs)

    def value(self, ablate: Tensor, start_layer: int = 0) -> float:
        """The metric with edges ablated by `ablate`; `start_layer` > 0 resumes from the clean
        run (only right when no edge into an earlier layer is ablated)."""
        start = self.states[start_layer] if start_layer > 0 else None
        with torch.no_grad():
            run = self.ef.run(
                self.batch.clean, ablate, self.ablated, start=start, read_at=self.read_at
            )
        return float(self.metric_of(run.logits))

    def fraction(self, value: float) -> float:
        """(value - empty) / (full - empty): 1 = the full model's metric, 0 = all ablated."""
        span = self.full_value - self.empty_value
        return (value - self.empty_value) / span if span != 0 else float("nan")

    def mask_keeping(self, keep: Tensor) -> Tensor:
        """The ablation mask that keeps the edges in `keep` [n_edges] bool and ablates the rest."""
        g = self.graph
        m = g.valid.to(self.ablated.dtype).clone()
        m[g.edge_up[keep], g.edge_recv[keep]] = 0.0
        return m
