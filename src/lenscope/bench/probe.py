"""Binary logistic probes, exactly: L2-regularised logistic regression solved by Newton's method.

The objective is scikit-learn's default `LogisticRegression` (what SAEBench's probes use):

    minimise  sum_i log(1 + exp(-s_i (w . x_i + b)))  +  |w|^2 / (2 C)       s_i = +-1, b free

Features are standardised on the training rows first (a probe on raw activations and one on
standardised ones differ only by the penalty's scale; standardising makes Newton's steps well
conditioned). `top_k_mean_diff` is SAEBench's latent selection for sparse probes: the k latents
with the largest |mean over positives - mean over negatives| on the training split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from lenscope.errors import InputError


@dataclass
class Probe:
    """A fitted probe: weights on standardised features, the standardisation, the intercept."""

    w: Tensor  # [d] float64
    b: float
    mean: Tensor  # [d]
    std: Tensor  # [d]

    def logits(self, x: Tensor) -> Tensor:
        return ((x.double() - self.mean) / self.std) @ self.w + self.b

    def accuracy(self, x: Tensor, y: Tensor) -> float:
        """The share of rows whose predicted class (logit > 0) is `y` (0/1)."""
        if x.shape[0] == 0:
            return float("nan")
        return float(((self.logits(x) > 0) == y.bool()).double().mean())


def check_binary(y: Tensor, what: str = "the label") -> None:
    """`InputError` unless `y` holds both classes."""
    n1 = int(y.sum())
    if n1 == 0 or n1 == y.numel():
        only = "positive" if n1 else "negative"
        raise InputError(
            f"{what} has a single class ({y.numel()} {only} tokens); a probe needs both classes"
        )


def fit_logistic(
    x: Tensor,
    y: Tensor,
    *,
    C: float = 1.0,
    standardize: bool = True,
    max_iter: int = 50,
    tol: float = 1e-10,
) -> Probe:
    """Fit the probe of the module docstring to rows `x` [n, d] with labels `y` [n] (0/1);
    `C = inf` fits without penalty (the data must not be separable)."""
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise InputError("a probe needs features [n, d] and one label per row")
    check_binary(y)
    xd = x.double()
    mean = xd.mean(0) if standardize else torch.zeros(x.shape[1], dtype=torch.float64)
    std = xd.std(0, unbiased=False) if standardize else torch.ones(x.shape[1], dtype=torch.float64)
    std = torch.where(std > 0, std, torch.ones_like(std))
    z = torch.cat([(xd - mean) / std, torch.ones(x.shape[0], 1, dtype=torch.float64)], 1)
    t = y.double()
    d = z.shape[1]
    lam = torch.full((d,), 0.0 if math.isinf(C) else 1.0 / C, dtype=torch.float64)
    lam[-1] = 0.0  # the intercept is not penalised
    theta = torch.zeros(d, dtype=torch.float64)

    def loss(th: Tensor) -> float:
        m = z @ th
        return float(
            torch.nn.functional.softplus(m).sum() - (t * m).sum() + 0.5 * (lam * th**2).sum()
        )

    f = loss(theta)
    for _ in range(max_iter):
        p = torch.sigmoid(z @ theta)
        g = z.T @ (p - t) + lam * theta
        h = (z * (p * (1 - p))[:, None]).T @ z + torch.diag(lam)
        h += 1e-12 * torch.eye(d, dtype=torch.float64)
        step = torch.linalg.solve(h, g)
        a = 1.0
        while a > 1e-8:  # backtracking keeps every step a descent step
            cand = theta - a * step
            fc = loss(cand)
            if fc <= f + 1e-4 * a * float(g @ -step):
                break
            a *= 0.5
        theta, f_old, f = cand, f, fc
        if abs(f_old - f) <= tol * max(1.0, abs(f)):
            break
    return Probe(theta[:-1].clone(), float(theta[-1]), mean, std)


def top_k_mean_diff(x: Tensor, y: Tensor, k: int) -> Tensor:
    """Indices [k] of the columns of `x` with the largest |mean(positives) - mean(negatives)|,
    largest first (ties: lower index first)."""
    if not 1 <= k <= x.shape[1]:
        raise InputError(f"k = {k} must be between 1 and the number of latents ({x.shape[1]})")
    check_binary(y)
    yb = y.bool()
    diff = (x[yb].double().mean(0) - x[~yb].double().mean(0)).abs()
    order = torch.argsort(-diff, stable=True)
    return order[:k]
