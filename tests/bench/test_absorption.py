"""Absorption and targeted probe perturbation against hand-computed cases and a synthetic
dictionary whose absorbing latent is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor

from lenscope.bench.absorption import absorption_fraction, keyword_absorption, kind_tpp
from lenscope.data.code_labels import KIND
from lenscope.sae.dictionary import Dictionary


def _case(main_s: float, other_s: list[float], other_cos: list[float]) -> tuple[float, bool]:
    s = torch.tensor([main_s, *other_s], dtype=torch.float64)
    cos = torch.tensor([0.9, *other_cos], dtype=torch.float64)
    return absorption_fraction(1.0, s, cos, [0], s != 0)


def test_absorption_fraction_by_hand() -> None:
    assert _case(1.2, [0.5], [0.5]) == (0.0, False)  # the main latent carries the projection
    assert _case(0.0, [0.8], [0.5]) == (1.0, True)  # one aligned latent takes it all
    frac, full = _case(0.3, [0.3, 0.2], [0.5, 0.5])  # 0.5 absorbed of the 0.7 left
    assert frac == pytest.approx(0.5 / 0.8) and not full  # the main latent fires
    assert _case(0.0, [0.8], [0.05])[0] == 0.0  # not aligned enough to absorb (cos < 0.1)
    assert _case(0.0, [0.8], [0.05]) == (0.0, True)  # but full absorption needs only 0.025
    assert _case(0.1, [0.3], [0.5])[0] == 0.0  # absorbers below 0.4 of the projection


def _synthetic(n: int = 2000, seed: int = 0) -> tuple[Dictionary, Tensor, np.ndarray, list[str]]:
    """Keywords point along e0; " return" (rare: too rare to count as a split of the keyword
    latent) also along e1, and there latent 1 fires instead of
    latent 0 (the keyword latent): latent 1 absorbs "is a keyword" on " return"."""
    g = torch.Generator().manual_seed(seed)
    d = 8
    kinds = np.array([KIND["keyword"]] * (n // 2) + [KIND["name"]] * (n - n // 2), np.int16)
    words = [" return" if i % 25 == 0 else " def" for i in range(n // 2)] + [" x"] * (n - n // 2)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * 0.1
    x[: n // 2, 0] += 2.0
    ret = torch.tensor([w == " return" for w in words])
    x[ret, 1] += 4.0
    w_dec = torch.eye(d, dtype=torch.float64)
    w_dec[1] = torch.tensor([1.0, 1.0, 0, 0, 0, 0, 0, 0], dtype=torch.float64) / 2**0.5

    def encode(v: Tensor) -> Tensor:
        f = torch.zeros(*v.shape[:-1], d, dtype=v.dtype)
        f[..., 1] = (v[..., 1] - 1.0).relu() * 2**0.5 / 2
        f[..., 0] = (v[..., 0] - 10 * v[..., 1].clamp_min(0)).relu()
        f[..., 2:] = v[..., 2:].relu()
        return f

    dic = Dictionary("h", ("h",), encode, (w_dec,))
    return dic, x, kinds, words


def test_the_known_absorber_of_return_is_found() -> None:
    dic, x, kinds, words = _synthetic()
    res = keyword_absorption(dic, x, x, dic.latents(x), kinds, words, per_class=1000)
    assert res.main_latents == [0]
    count_ret, frac_ret = res.by_child["return"]
    count_def, frac_def = res.by_child["def"]
    assert count_ret > 0 and frac_ret == pytest.approx(1.0)
    assert count_def > 0 and frac_def == pytest.approx(0.0)
    share = count_ret / (count_ret + count_def)
    assert res.mean_absorption_fraction == pytest.approx(share)
    assert res.full_absorption_rate == pytest.approx(share)


def test_tpp_is_large_when_each_kind_has_its_own_latent() -> None:
    g = torch.Generator().manual_seed(1)
    names = ["keyword", "name", "string"]
    n = 900
    kinds = np.array([KIND[names[i % 3]] for i in range(n)], np.int16)
    x = torch.randn(n, 6, generator=g, dtype=torch.float64) * 0.1
    for i, k in enumerate(names):
        x[torch.from_numpy(kinds == KIND[k]), i] += 1.0
    dic = Dictionary("h", ("h",), lambda v: v.relu(), (torch.eye(6, dtype=torch.float64),))
    res = kind_tpp(dic, x, x, dic.latents(x), kinds, k=1, per_class=300)
    assert res is not None and res.classes == names
    drops = np.array(res.drops)
    assert (np.diag(drops) > 0.3).all()  # removing a kind's latent blinds its probe
    assert np.abs(drops - np.diag(np.diag(drops))).max() < 0.1  # and hardly the others
    n_cls = len(names)
    off = [drops[i, j] for i in range(n_cls) for j in range(n_cls) if i != j]
    assert res.tpp == pytest.approx(np.mean(np.diag(drops)) - np.mean(off))


def test_too_few_keywords_give_no_absorption_figure() -> None:
    dic, x, kinds, words = _synthetic(200)
    kinds = kinds.copy()
    kinds[10:100] = KIND["name"]  # 10 keywords left
    assert keyword_absorption(dic, x, x, dic.latents(x), kinds, words) is None
