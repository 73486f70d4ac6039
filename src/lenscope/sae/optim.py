"""Adam for SAE training: the update of `torch.optim.Adam` (Kingma & Ba, bias-corrected).

It calls torch's fused Adam kernel directly (the kernel `torch.optim.Adam(fused=True)` runs), with
a plain-tensor fallback. `torch.optim` imports `torch._dynamo` on the first step, which costs
seconds at every process start (every `lenscope sae train`, every data-parallel rank); this
avoids that and keeps the state as plain named tensors for checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn


class Adam:
    """Adam over a fixed list of parameters; `lr` may change between steps."""

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        self.fused = all(p.device.type in ("cpu", "cuda") for p in self.params) and hasattr(
            torch, "_fused_adam_"
        )

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        idx = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not idx:
            return
        for i in idx:
            self.steps[i] += 1
        if self.fused:
            torch._fused_adam_(
                [self.params[i] for i in idx],
                [self.params[i].grad for i in idx],  # type: ignore[misc]
                [self.exp_avg[i] for i in idx],
                [self.exp_avg_sq[i] for i in idx],
                [],
                [self.steps[i] for i in idx],
                lr=self.lr,
                beta1=self.beta1,
                beta2=self.beta2,
                weight_decay=0.0,
                eps=self.eps,
                amsgrad=False,
                maximize=False,
            )
            return
        for i in idx:
            self._plain(i)

    def _plain(self, i: int) -> None:
        p, g = self.params[i], self.params[i].grad
        assert g is not None
        m, v = self.exp_avg[i], self.exp_avg_sq[i]
        t = float(self.steps[i])
        m.lerp_(g, 1 - self.beta1)
        v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        c1 = 1 - self.beta1**t
        c2 = math.sqrt(1 - self.beta2**t)
        denom = (v.sqrt() / c2).add_(self.eps)
        p.addcdiv_(m, denom, value=-self.lr / c1)

    def state_tensors(self, names: list[str]) -> dict[str, Tensor]:
        """The state as named tensors (for checkpoints)."""
        out: dict[str, Tensor] = {}
        for n, m, v, s in zip(names, self.exp_avg, self.exp_avg_sq, self.steps, strict=True):
            out[f"adam.{n}.exp_avg"] = m
            out[f"adam.{n}.exp_avg_sq"] = v
            out[f"adam.{n}.step"] = s.reshape(1)
        return out

    def load_state_tensors(self, names: list[str], t: dict[str, Tensor]) -> None:
        """Inverse of `state_tensors`; KeyError or RuntimeError when they do not fit."""
        for i, n in enumerate(names):
            self.exp_avg[i].copy_(t[f"adam.{n}.exp_avg"].view(self.exp_avg[i].shape))
            self.exp_avg_sq[i].copy_(t[f"adam.{n}.exp_avg_sq"].view(self.exp_avg_sq[i].shape))
            self.steps[i].copy_(t[f"adam.{n}.step"].reshape(()))
