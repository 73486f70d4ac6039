"""What an ablated edge carries: the upstream node's zero, mean, per-position mean or resampled
output.

- `zero`: nothing (biases stay: they are no node);
- `mean`: the node's output averaged over every real position of every corrupted prompt;
- `mean-pos`: averaged over the corrupted prompts at each position (every clean position must
  exist in some corrupted prompt);
- `resample`: the node's output on the row's own corrupted prompt, position by position (clean
  and corrupted prompts must be equally long).

The means and resampled outputs come from the full model's run on the corrupted prompts.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from lenscope.discover.forward import EdgeForward
from lenscope.discover.tasks import TaskBatch
from lenscope.errors import InputError

Ablation = Literal["zero", "mean", "mean-pos", "resample"]
ABLATIONS: tuple[Ablation, ...] = ("zero", "mean", "mean-pos", "resample")


def check_ablation(ablation: str, batch: TaskBatch) -> Ablation:
    """The ablation's name, checked against the task's rows (one-line errors)."""
    if ablation not in ABLATIONS:
        raise InputError(f"ablation {ablation!r} is not one of {', '.join(ABLATIONS)}")
    if ablation == "resample" and not batch.aligned:
        i = int((batch.clean_len != batch.corrupted_len).nonzero()[0, 0])
        raise InputError(
            f"row {i + 1}: the clean prompt has {int(batch.clean_len[i])} tokens and the "
            f"corrupted one {int(batch.corrupted_len[i])}; resample ablation patches position by "
            "position, so they must be equally long (or use --ablation mean)"
        )
    if ablation == "mean-pos" and int(batch.clean_len.max()) > int(batch.corrupted_len.max()):
        raise InputError(
            f"the longest clean prompt has {int(batch.clean_len.max())} tokens but the corrupted "
            f"prompts at most {int(batch.corrupted_len.max())}; mean-pos ablation needs a mean at "
            "every clean position (or use --ablation mean)"
        )
    return ablation


def ablated_outputs(ef: EdgeForward, batch: TaskBatch, ablation: Ablation) -> Tensor:
    """[n_upstream, rows | 1, pos | 1, d_model]: what each upstream node's ablated edges carry,
    broadcastable against the clean run's outputs [n_upstream, rows, pos, d_model]."""
    n_up, d = len(ef.graph.upstream), ef.model.cfg.d_model
    p = batch.clean.shape[1]
    if ablation == "zero":
        return torch.zeros(n_up, 1, 1, d, device=batch.clean.device, dtype=ef.model.W_E.dtype)
    with torch.no_grad():
        run = ef.run(batch.corrupted, keep_outputs=True)
    outs = run.outputs
    assert outs is not None
    real = (
        torch.arange(outs.shape[2], device=outs.device)[None, :] < batch.corrupted_len[:, None]
    ).to(outs.dtype)  # [rows, pos']
    if ablation == "resample":
        return outs[:, :, :p]
    if ablation == "mean":
        total = torch.einsum("ubpd,bp->ud", outs, real)
        return (total / real.sum())[:, None, None, :]
    per_pos = torch.einsum("ubpd,bp->upd", outs, real) / real.sum(0).clamp(min=1)[None, :, None]
    return per_pos[:, None, :p]
