"""Folded weights, bigram / OV / QK circuits and their slices against dense brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lenscope.circuits.folding import circuit_weights
from lenscope.circuits.tables import (
    direct_path,
    full_ov,
    full_qk,
    strongest_rows,
    token_table,
    top_entries,
)
from lenscope.errors import InputError
from tests.circuits.dense import dense
from tests.circuits.models import random_model


@pytest.mark.parametrize("norm", ["LN", "RMS", "none"])
def test_circuits_match_dense_products(norm: str) -> None:
    model = random_model(2, norm)
    cw = circuit_weights(model, freeze_scales=False)
    D = dense(model)
    np.testing.assert_allclose(direct_path(cw).AB.numpy(), D.E @ D.WU + D.bU, atol=1e-10)
    for layer in range(2):
        for h in range(3):
            ov = D.E @ D.WV[layer, h] @ D.WO[layer, h] @ D.WU
            qk = (D.E @ D.WQ[layer, h]) @ (D.E @ D.WK[layer, h]).T / np.sqrt(D.dh)
            np.testing.assert_allclose(full_ov(cw, layer, h).AB.numpy(), ov, atol=1e-10)
            np.testing.assert_allclose(full_qk(cw, layer, h).AB.numpy(), qk, atol=1e-10)
    assert ("centred" in cw.ln.describe()) == (norm == "LN")
    assert "scales not applied" in cw.ln.describe() or norm == "none"


def test_frozen_scales_are_mean_norm_scales_of_the_reference_batch() -> None:
    model = random_model(2, "LN")
    ref = torch.randint(0, 40, (3, 10), generator=torch.Generator().manual_seed(5))
    cw = circuit_weights(model, reference=ref)
    _, cache = model.run_with_cache(ref, names_filter=lambda n: "resid" in n)
    resid = [cache["blocks.0.hook_resid_pre"], cache["blocks.1.hook_resid_pre"]]
    final = cache["blocks.1.hook_resid_post"]
    for layer, x in enumerate(resid):
        xc = x.double() - x.double().mean(-1, keepdim=True)
        s = torch.sqrt(xc.pow(2).mean(-1) + model.cfg.eps)[:, 1:].mean()
        assert cw.ln.ln1_scale[layer] == pytest.approx(float(s), rel=1e-5)
    xc = final.double() - final.double().mean(-1, keepdim=True)
    sf = torch.sqrt(xc.pow(2).mean(-1) + model.cfg.eps)[:, 1:].mean()
    assert cw.ln.ln_final_scale == pytest.approx(float(sf), rel=1e-5)
    assert "frozen" in cw.ln.describe() and "3x10" in cw.ln.describe()
    # frozen scales divide the circuits: OV reads embed / s1 and writes W_U / s_f
    plain = circuit_weights(model, freeze_scales=False)
    ratio = full_ov(cw, 1, 2).AB / full_ov(plain, 1, 2).AB
    expected = 1.0 / (cw.ln.ln1_scale[1] * cw.ln.ln_final_scale)
    np.testing.assert_allclose(ratio.numpy(), expected, rtol=1e-8)


def test_top_entries_and_strongest_rows_match_dense() -> None:
    model = random_model(1, "LN", d_vocab=50)
    cw = circuit_weights(model, freeze_scales=False)
    fm = full_ov(cw, 0, 1)
    full = fm.AB.numpy()
    rows = top_entries(fm, [3, 17], k=4)
    for r in rows:
        order = np.argsort(-full[r.token])
        assert [s.token for s in r.top] == order[:4].tolist()
        assert [s.token for s in r.bottom] == order[::-1][:4].tolist()
        np.testing.assert_allclose([s.score for s in r.top], full[r.token, order[:4]])
    spread = full.max(1) - full.mean(1)
    assert strongest_rows(fm, 5, chunk=7) == np.argsort(-spread)[:5].tolist()
    allowed = torch.zeros(50, dtype=torch.bool)
    allowed[[1, 2, 3]] = True
    assert sorted(strongest_rows(fm, 5, allowed=allowed)) == [1, 2, 3]


def test_token_table_and_errors() -> None:
    model = random_model(2, "RMS")
    cw = circuit_weights(model)
    t = token_table(cw, "qk", 1, 0, tokens=[0, 5], k=3, label=lambda i: f"<{i}>")
    assert t.head == "L1.H0" and [r.token for r in t.rows] == [0, 5]
    assert t.rows[0].text == "<0>" and len(t.rows[0].top) == 3
    assert t.to_json()["rows"][1]["top"][0]["text"].startswith("<")
    bigram = token_table(cw, "bigram", n_rows=4)
    assert bigram.head is None and len(bigram.rows) == 4
    with pytest.raises(InputError, match="outside the vocabulary"):
        token_table(cw, "ov", 0, 0, tokens=[99])
    with pytest.raises(InputError, match="layer 5"):
        full_ov(cw, 5, 0)
    with pytest.raises(InputError, match="head 7"):
        full_qk(cw, 0, 7)
