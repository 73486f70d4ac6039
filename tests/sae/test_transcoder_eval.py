"""Transcoder evaluation against an independent hooked computation: per-layer FVU, L0 and dead
fraction from hand-written encoders, and the replacement model's loss (every MLP replaced, no
error term) against the original and the all-MLPs-zeroed model, with a hand-written forward."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from lenscope.errors import InputError
from lenscope.sae.transcoder_eval import evaluate_transcoders
from tests.sae.helpers import tiny_model, tiny_tokens
from tests.sae.tc_helpers import random_set


def _act(pre: Tensor, activation: str, thr: Tensor, k: int | None) -> Tensor:
    if activation == "topk":
        assert k is not None
        kth = pre.topk(k, dim=-1).values[..., -1:]
        return torch.where(pre >= kth, pre, 0.0).relu()
    if activation in ("jumprelu", "batchtopk"):
        return torch.where(pre > thr, pre, 0.0).relu()
    return pre.relu()


@torch.no_grad()
def _by_hand(model: Any, ts: Any, batches: list[Tensor]) -> dict[str, Any]:
    """Everything `evaluate_transcoders` reports, from raw weights and explicit hooks."""
    L = model.cfg.n_layers
    if ts.clt is not None:
        c = ts.clt
        enc = [
            (c.W_enc[i].t(), c.b_enc[i], c.threshold[i] if c.threshold else None) for i in range(L)
        ]
    else:
        enc = [(t.W_enc, t.b_enc, t.threshold) for t in ts.transcoders]

    def lat(i: int, x: Tensor) -> Tensor:
        W, b, thr = enc[i]
        return _act(x @ W + b, ts.cfg.activation, thr, ts.cfg.k)

    def pred(j: int, xs: dict[int, Tensor]) -> Tensor:
        if ts.clt is not None:
            c = ts.clt
            out = c.b_dec[j].expand(*xs[j].shape[:-1], -1).clone()
            for i in range(j + 1):
                out = out + lat(i, xs[i]) @ c.W_dec[i][:, j - i]
            return out
        t = ts.transcoders[j]
        out = lat(j, xs[j]) @ t.W_dec + t.b_dec
        return out if t.W_skip is None else out + xs[j] @ t.W_skip

    def ce(logits: Tensor, b: Tensor) -> Tensor:
        return F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1), reduction="sum"
        )

    nll = {"orig": 0.0, "rep": 0.0, "zero": 0.0}
    ys: list[list[Tensor]] = [[] for _ in range(L)]
    ps: list[list[Tensor]] = [[] for _ in range(L)]
    fs: list[list[Tensor]] = [[] for _ in range(L)]
    n = 0
    for b in batches:
        logits, cache = model.run_with_cache(b)
        xs = {i: cache[f"blocks.{i}.ln2.hook_normalized"] for i in range(L)}
        for j in range(L):
            ys[j].append(cache[f"blocks.{j}.hook_mlp_out"].reshape(-1, model.cfg.d_model))
            ps[j].append(pred(j, xs).reshape(-1, model.cfg.d_model))
            fs[j].append(lat(j, xs[j]).reshape(-1, ts.cfg.d_sae))
        nll["orig"] += float(ce(logits, b))
        seen: dict[int, Tensor] = {}

        def keep(i: int, seen: dict[int, Tensor] = seen) -> Any:
            def fn(x: Tensor, _h: Any) -> None:
                seen[i] = x

            return fn

        def put(j: int, seen: dict[int, Tensor] = seen) -> Any:
            def fn(y: Tensor, _h: Any) -> Tensor:
                return pred(j, seen)

            return fn

        hooks = [(f"blocks.{i}.ln2.hook_normalized", keep(i)) for i in range(L)]
        hooks += [(f"blocks.{j}.hook_mlp_out", put(j)) for j in range(L)]
        nll["rep"] += float(ce(model.run_with_hooks(b, fwd_hooks=hooks), b))
        zero = [(f"blocks.{j}.hook_mlp_out", lambda y, _h: y * 0) for j in range(L)]
        nll["zero"] += float(ce(model.run_with_hooks(b, fwd_hooks=zero), b))
        n += b.shape[0] * (b.shape[1] - 1)
    out: dict[str, Any] = {k: v / n for k, v in nll.items()}
    out["fvu"] = []
    out["l0"] = []
    out["dead"] = []
    for j in range(L):
        y, p, f = torch.cat(ys[j]).double(), torch.cat(ps[j]).double(), torch.cat(fs[j])
        out["fvu"].append(float(((y - p) ** 2).sum() / ((y - y.mean(0)) ** 2).sum()))
        out["l0"].append(float((f != 0).sum(1).double().mean()))
        out["dead"].append(float(((f != 0).sum(0) == 0).double().mean()))
    return out


@pytest.mark.parametrize(
    ("activation", "k", "skip", "cross"),
    [("topk", 6, True, False), ("batchtopk", 6, False, False), ("jumprelu", None, False, True)],
)
def test_figures_match_a_hand_written_replacement(
    activation: str, k: int | None, skip: bool, cross: bool
) -> None:
    torch.manual_seed(0)
    m = tiny_model(n_layers=3).to(torch.float64)
    ts = random_set(m, activation=activation, k=k, skip=skip, cross_layer=cross, d_sae=40)
    ts.transcoders = [t.double() for t in ts.transcoders]
    if ts.clt is not None:
        c = ts.clt
        c.W_enc, c.b_enc = [w.double() for w in c.W_enc], [w.double() for w in c.b_enc]
        c.W_dec, c.b_dec = [w.double() for w in c.W_dec], [w.double() for w in c.b_dec]
        c.threshold = [w.double() for w in c.threshold] if c.threshold else None
    toks = tiny_tokens(4000)
    res = evaluate_transcoders(m, ts, toks, n_tokens=3 * 16 * 4, ctx=16, batch_size=4)
    batches = [torch.as_tensor(toks[i * 64 : (i + 1) * 64]).reshape(4, 16) for i in range(3)]
    want = _by_hand(m, ts, batches)
    assert res.n_tokens == 192
    for j, lay in enumerate(res.layers):
        assert lay.fvu == pytest.approx(want["fvu"][j], rel=1e-9)
        assert lay.l0 == pytest.approx(want["l0"][j], rel=1e-12)
        assert lay.dead_fraction == pytest.approx(want["dead"][j], abs=1e-12)
    # the model's loss is a float32 mean: agreement to float32 precision
    assert res.ce_orig == pytest.approx(want["orig"], rel=1e-6)
    assert res.ce_replaced == pytest.approx(want["rep"], rel=1e-6)
    assert res.ce_zero == pytest.approx(want["zero"], rel=1e-6)
    frac = (res.ce_zero - res.ce_replaced) / (res.ce_zero - res.ce_orig)
    assert res.loss_recovered == pytest.approx(frac, rel=1e-12)
    assert res.ce_replaced != pytest.approx(res.ce_orig)  # the replacement is not the model


def test_eval_refuses_a_set_of_another_model() -> None:
    m = tiny_model()
    other = tiny_model(d_model=48)
    ts = random_set(other)
    with pytest.raises(InputError, match="48"):
        evaluate_transcoders(m, ts, tiny_tokens(2000), n_tokens=64, ctx=16)
