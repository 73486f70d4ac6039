"""SAEBench's core metrics of any dictionary (SAE or transcoder) through the one adapter.

For an SAE the input x and the target y are the activation at its hook; for a transcoder x is
read at `hook_in` and y is the MLP's output at its `hooks_out` (several output hooks: their
concatenation). x_hat = dic.decode(encode(x), x). Positions whose token is the stream's document
separator are left out of every figure (SAEBench leaves out BOS / EOS / pad tokens).

    ce_loss_score      (CE_zero - CE_dict) / (CE_zero - CE_clean): next-token loss recovered,
                       with the output hook(s) zero-ablated as the baseline and the dictionary
                       spliced in (no error term) for CE_dict
    kl_div_score       (KL_zero - KL_dict) / KL_zero, KL(clean || patched) per position
    explained_variance mean over tokens of 1 - |y - y_hat|^2 / |y - mean_batch(y)|^2
                       (SAEBench's per-token form); `fvu` is the pooled sum ratio
    cossim, l2_ratio   mean over tokens of cos(y, y_hat) and |y_hat| / |y| (|y| < 1e-4: / 1)
    relative_reconstruction_bias  mean over batches of E|y_hat|^2 / E[y . y_hat] (1 = unbiased,
                       < 1 shrinkage; eq. 10 of arXiv:2404.16014)
    l0, l1             mean over tokens of #(f != 0) and sum |f|
    density            per latent, the share of tokens where f > 0; frac_alive (density > 0),
                       freq_over_1_percent / 10_percent (share of latents with density > 1% / 10%)
    max_encoder_cossim / max_decoder_cossim  mean over latents of the largest cosine similarity
                       with another latent's encoder column / decoder row (all output hooks)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.jsonable import JsonResult
from lenscope.model import HookedTransformer
from lenscope.model.capture import flatten_act, recorder
from lenscope.sae.dictionary import Dictionary, splice


@dataclass
class CoreMetrics(JsonResult):
    n_tokens: int
    ce_clean: float
    ce_dict: float
    ce_zero: float
    ce_loss_score: float
    kl_dict: float
    kl_zero: float
    kl_div_score: float
    explained_variance: float
    fvu: float
    mse: float
    cossim: float
    l2_ratio: float
    relative_reconstruction_bias: float
    l0: float
    l1: float
    frac_alive: float
    freq_over_1_percent: float
    freq_over_10_percent: float
    max_encoder_cossim: float | None
    max_decoder_cossim: float


def max_cossim(vectors: Tensor, chunk: int = 512) -> Tensor:
    """[n]: for each row of `vectors` [n, d], its largest cosine similarity with another row."""
    v = torch.nn.functional.normalize(vectors.double(), dim=1)
    out = torch.empty(v.shape[0], dtype=torch.float64)
    for a in range(0, v.shape[0], chunk):
        sims = v[a : a + chunk] @ v.T
        idx = torch.arange(a, min(a + chunk, v.shape[0]))
        sims[idx - a, idx] = -math.inf
        out[a : a + chunk] = sims.max(1).values
    return out


def encoder_columns(dic: Dictionary) -> Tensor | None:
    """The encoder as [d_sae, d_in] rows when the dictionary has a linear encoder `W_enc`."""
    w = getattr(dic.source, "W_enc", None)
    if not isinstance(w, Tensor) or w.ndim != 2:
        return None
    if w.shape[1] == dic.d_sae:
        return w.detach().T
    return w.detach() if w.shape[0] == dic.d_sae else None


def _kl(clean: Tensor, other: Tensor) -> Tensor:
    p = clean.double().log_softmax(-1)
    q = other.double().log_softmax(-1)
    return (p.exp() * (p - q)).sum(-1)


def _nll(logits: Tensor, tokens: Tensor) -> Tensor:
    """[b, pos - 1] next-token losses."""
    lp = logits[:, :-1].double().log_softmax(-1)
    return -lp.gather(-1, tokens[:, 1:, None])[..., 0]


def _zero(x: Tensor, _hook: Any) -> Tensor:
    return torch.zeros_like(x)


class _Sums:
    """Running sums of the per-token figures."""

    def __init__(self, d_sae: int) -> None:
        self.fires = torch.zeros(d_sae, dtype=torch.float64)
        self.n = 0
        self.sums: dict[str, float] = dict.fromkeys(
            (
                "ev",
                "sse",
                "sst",
                "cos",
                "l2r",
                "l0",
                "l1",
                "nll_c",
                "nll_d",
                "nll_z",
                "kl_d",
                "kl_z",
            ),
            0.0,
        )
        self.n_pred = 0
        self.rrb: list[float] = []
        self.width = 0

    def add(self, key: str, v: Tensor | float) -> None:
        self.sums[key] += float(v.sum()) if isinstance(v, Tensor) else v


@torch.no_grad()
def core_metrics(
    model: HookedTransformer,
    dic: Dictionary,
    batches: list[Tensor],
    *,
    separator: int | None = None,
    tick: Callable[[], None] | None = None,
) -> CoreMetrics:
    """The core metrics of the module docstring over token windows `batches` ([b, ctx] each)."""
    if not batches:
        raise InputError("the core metrics need at least one batch of tokens")
    s = _Sums(dic.d_sae)
    for tokens in batches:
        _batch(model, dic, tokens.to(model.device), separator, s)
        if tick is not None:
            tick()
    if s.n == 0:
        raise InputError("no tokens to evaluate (every position is a document separator)")
    sums, n = s.sums, s.n
    density = s.fires / n
    enc = encoder_columns(dic)
    dec = torch.cat([d.detach() for d in dic.decoders], 1)
    ce = {k: sums[k] / max(s.n_pred, 1) for k in ("nll_c", "nll_d", "nll_z")}
    gap = ce["nll_z"] - ce["nll_c"]
    kl_d, kl_z = sums["kl_d"] / n, sums["kl_z"] / n
    return CoreMetrics(
        n_tokens=n,
        ce_clean=ce["nll_c"],
        ce_dict=ce["nll_d"],
        ce_zero=ce["nll_z"],
        ce_loss_score=(ce["nll_z"] - ce["nll_d"]) / gap if gap != 0 else math.nan,
        kl_dict=kl_d,
        kl_zero=kl_z,
        kl_div_score=(kl_z - kl_d) / kl_z if kl_z != 0 else math.nan,
        explained_variance=sums["ev"] / n,
        fvu=sums["sse"] / sums["sst"] if sums["sst"] > 0 else math.nan,
        mse=sums["sse"] / (n * s.width),
        cossim=sums["cos"] / n,
        l2_ratio=sums["l2r"] / n,
        relative_reconstruction_bias=sum(s.rrb) / len(s.rrb),
        l0=sums["l0"] / n,
        l1=sums["l1"] / n,
        frac_alive=float((density > 0).double().mean()),
        freq_over_1_percent=float((density > 0.01).double().mean()),
        freq_over_10_percent=float((density > 0.1).double().mean()),
        max_encoder_cossim=None if enc is None else float(max_cossim(enc).mean()),
        max_decoder_cossim=float(max_cossim(dec).mean()),
    )


def _batch(
    model: HookedTransformer,
    dic: Dictionary,
    tokens: Tensor,
    separator: int | None,
    s: _Sums,
) -> None:
    hooks = list(dict.fromkeys((dic.hook_in, *dic.hooks_out)))
    store: dict[str, Tensor] = {}
    with model.hooks(fwd=recorder(store, hooks, Tensor.detach)):
        clean = model(tokens)
    keep = (
        (tokens != separator)
        if separator is not None
        else torch.ones_like(tokens, dtype=torch.bool)
    )
    flat_keep = keep.reshape(-1).cpu()
    x = flatten_act(store[dic.hook_in])
    xf = x.reshape(-1, x.shape[-1])
    f = dic.latents(xf)
    y = torch.cat([flatten_act(store[h]).reshape(xf.shape[0], -1) for h in dic.hooks_out], 1)
    y_hat = torch.cat([dic.decode(f, xf, h).reshape(xf.shape[0], -1) for h in dic.hooks_out], 1)
    f, y, y_hat = (
        f[flat_keep].double().cpu(),
        y[flat_keep].double().cpu(),
        y_hat[flat_keep].double().cpu(),
    )
    s.width = y.shape[1]
    n = y.shape[0]
    if n:
        err = ((y - y_hat) ** 2).sum(1)
        tot = ((y - y.mean(0)) ** 2).sum(1)
        s.add("ev", 1 - err / tot)
        s.add("sse", err)
        s.add("sst", tot)
        s.add("cos", torch.nn.functional.cosine_similarity(y, y_hat, dim=1, eps=1e-12))
        norm = y.norm(dim=1)
        s.add(
            "l2r", y_hat.norm(dim=1) / torch.where(norm.abs() < 1e-4, torch.ones_like(norm), norm)
        )
        s.rrb.append(float((y_hat**2).sum(1).mean() / (y * y_hat).sum(1).mean()))
        s.add("l0", (f != 0).sum(1).double())
        s.add("l1", f.abs().sum(1))
        s.fires += (f > 0).double().sum(0)
        s.n += n
    spliced = model.run_with_hooks(tokens, fwd_hooks=splice(dic, keep_error=False))
    zeroed = model.run_with_hooks(tokens, fwd_hooks=[(h, _zero) for h in dic.hooks_out])
    pred = keep[:, :-1]
    for key, logits in (("nll_c", clean), ("nll_d", spliced), ("nll_z", zeroed)):
        s.add(key, _nll(logits, tokens)[pred])
    s.n_pred += int(pred.sum())
    s.add("kl_d", _kl(clean, spliced)[keep])
    s.add("kl_z", _kl(clean, zeroed)[keep])
