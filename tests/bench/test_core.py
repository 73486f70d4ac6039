"""Core metrics against SAEBench's formulas computed by hand, token by token, with plain hooks."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor

from lenscope.bench.core import core_metrics, max_cossim
from lenscope.errors import InputError
from lenscope.model.capture import capture
from lenscope.sae.dictionary import Dictionary
from tests.bench.helpers import tiny_model, tiny_sae, tiny_transcoder


def _tokens(seed: int, sep: int | None = None) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, 4000, (2, 32), generator=g)
    if sep is not None:
        t[0, 5] = sep
        t[1, 20] = sep
    return t


def _replace(value: Tensor) -> Any:
    def fn(x: Tensor, _hook: Any) -> Tensor:
        return value.reshape(x.shape).to(x.dtype)

    return fn


@torch.no_grad()
def _brute(model: Any, dic: Dictionary, batches: list[Tensor], sep: int) -> dict[str, float]:
    """SAEBench's definitions, one python loop per token."""
    ev, cos, l2r, l0, l1, se = [], [], [], [], [], 0.0
    rrb, nll = [], {"c": [], "d": [], "z": []}
    kl: dict[str, list[float]] = {"d": [], "z": []}
    fires = torch.zeros(dic.d_sae, dtype=torch.float64)
    n_tok = 0
    hook_out = dic.hooks_out[0]
    for toks in batches:
        x = capture(model, toks, dic.hook_in).double()
        y = capture(model, toks, hook_out).double()
        keep = [
            (b, p) for b in range(toks.shape[0]) for p in range(toks.shape[1]) if toks[b, p] != sep
        ]
        f = dic.source.encode(x.float()).double()
        y_hat = dic.decode(f.float(), x.float(), hook_out).double()
        ys = torch.stack([y[b, p] for b, p in keep])
        mean = ys.mean(0)
        num = den = 0.0
        for b, p in keep:
            yv, hv, fv = y[b, p], y_hat[b, p], f[b, p]
            ev.append(1 - float(((yv - hv) ** 2).sum()) / float(((yv - mean) ** 2).sum()))
            se += float(((yv - hv) ** 2).sum())
            cos.append(float(yv @ hv) / (float(yv.norm()) * float(hv.norm())))
            l2r.append(float(hv.norm()) / float(yv.norm()))
            l0.append(float((fv != 0).sum()))
            l1.append(float(fv.abs().sum()))
            fires += (fv > 0).double()
            num += float(hv @ hv)
            den += float(yv @ hv)
            n_tok += 1
        rrb.append(num / den)
        clean = model(toks).double()
        spliced_act = dic.decode(dic.source.encode(x.float()), x.float(), hook_out)
        spl = model.run_with_hooks(toks, fwd_hooks=[(hook_out, _replace(spliced_act))]).double()
        zero = model.run_with_hooks(toks, fwd_hooks=[(hook_out, _replace(torch.zeros_like(y)))])
        for key, lg in (("c", clean), ("d", spl), ("z", zero.double())):
            for b, p in keep:
                if p + 1 < toks.shape[1]:
                    nll[key].append(-float(lg[b, p].log_softmax(-1)[toks[b, p + 1]]))
        for key, lg in (("d", spl), ("z", zero.double())):
            for b, p in keep:
                lp, lq = clean[b, p].log_softmax(-1), lg[b, p].log_softmax(-1)
                kl[key].append(float((lp.exp() * (lp - lq)).sum()))
    ce = {k: sum(v) / len(v) for k, v in nll.items()}
    kd, kz = sum(kl["d"]) / n_tok, sum(kl["z"]) / n_tok
    dens = fires / n_tok
    return {
        "ce_loss_score": (ce["z"] - ce["d"]) / (ce["z"] - ce["c"]),
        "kl_div_score": (kz - kd) / kz,
        "explained_variance": sum(ev) / n_tok,
        "mse": se / (n_tok * y.shape[-1]),
        "cossim": sum(cos) / n_tok,
        "l2_ratio": sum(l2r) / n_tok,
        "relative_reconstruction_bias": sum(rrb) / len(rrb),
        "l0": sum(l0) / n_tok,
        "l1": sum(l1) / n_tok,
        "frac_alive": float((dens > 0).double().mean()),
        "freq_over_1_percent": float((dens > 0.01).double().mean()),
        "freq_over_10_percent": float((dens > 0.1).double().mean()),
        "n_tokens": n_tok,
    }


@pytest.mark.parametrize("which", ["sae", "transcoder"])
def test_core_metrics_match_saebench_formulas_token_by_token(which: str) -> None:
    m = tiny_model()
    src = tiny_sae(m) if which == "sae" else tiny_transcoder(m)
    dic = Dictionary.of(src)
    sep = int(m.tokenizer.eos_id)  # type: ignore[union-attr]
    batches = [_tokens(1, sep), _tokens(2, sep)]
    got = core_metrics(m, dic, batches, separator=sep).to_json()
    want = _brute(m, dic, batches, sep)
    assert got["n_tokens"] == want.pop("n_tokens") == 2 * 64 - 4
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
    if which == "sae":
        assert got["l0"] <= 4  # TopK k=4
    assert 0 < got["frac_alive"] <= 1


def test_max_cossim_is_the_largest_similarity_to_another_row() -> None:
    g = torch.Generator().manual_seed(0)
    v = torch.randn(7, 5, generator=g, dtype=torch.float64)
    v[3] = 2 * v[1]  # parallel rows: similarity 1
    got = max_cossim(v, chunk=3)
    for i in range(7):
        best = max(
            float(v[i] @ v[j]) / (float(v[i].norm()) * float(v[j].norm()))
            for j in range(7)
            if j != i
        )
        assert float(got[i]) == pytest.approx(best, abs=1e-9)
    assert math.isclose(float(got[1]), 1.0, abs_tol=1e-9)


def test_encoder_and_decoder_similarities_of_an_sae() -> None:
    m = tiny_model()
    sae = tiny_sae(m)
    got = core_metrics(m, Dictionary.of(sae), [_tokens(3)])
    assert got.max_decoder_cossim == pytest.approx(float(max_cossim(sae.W_dec.detach()).mean()))
    assert got.max_encoder_cossim == pytest.approx(float(max_cossim(sae.W_enc.detach().T).mean()))


def test_no_batches_is_one_clear_error() -> None:
    m = tiny_model()
    with pytest.raises(InputError, match="at least one batch"):
        core_metrics(m, Dictionary.of(tiny_sae(m)), [])
