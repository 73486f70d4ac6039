"""The mergeable state: exact k-selection, order-independent merges, bounded size."""

from __future__ import annotations

import copy

import numpy as np
import torch

from lenscope.records.prio import QUANTILE_STREAM, RANDOM_STREAM, priorities
from lenscope.records.select import EMPTY, slot_merge, sort_slots
from lenscope.records.state import BatchInfo, GroupState, SharedState, calibrate

N, T, CTX, K = 12, 64, 16, 5
LEVELS, BINS, PER_Q = (0.5, 0.9), 6, 3


def test_slot_merge_keeps_the_k_smallest_pairs() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        key = torch.randint(0, 6, (7, K), generator=g).double()  # many ties
        pos = torch.randperm(1000, generator=g)[: 7 * K].view(7, K)
        new_key = torch.randint(0, 6, (7, 3), generator=g).double()
        new_pos = torch.randperm(1000, generator=g)[: 7 * 3].view(7, 3) + 1000
        union = [
            sorted(
                zip(
                    key[r].tolist() + new_key[r].tolist(),
                    pos[r].tolist() + new_pos[r].tolist(),
                    strict=True,
                )
            )[:K]
            for r in range(7)
        ]
        slot_merge(key, pos, new_key, new_pos)
        for r in range(7):
            assert sorted(zip(key[r].tolist(), pos[r].tolist(), strict=True)) == union[r]


def batches(n: int, seed: int = 0, ties: bool = False) -> list[torch.Tensor]:
    """Activation batches [T, N]; with `ties`, small integers (many equal values, mostly 0) and
    two dead nodes (always 0), as rectified or sparse nodes give."""
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(T, N, generator=g) ** 3 for _ in range(n)]
    if ties:
        xs = [x.round().clamp(min=0) for x in xs]
        for x in xs:
            x[:, :2] = 0.0
    return xs


def run(
    xs: list[torch.Tensor], which: list[int], heads: bool = False
) -> tuple[GroupState, SharedState]:
    cal = calibrate(torch.cat(xs).T, LEVELS, BINS)
    st = GroupState(N, cal, K, 4, PER_Q, 5, BINS, heads=False)
    sh = SharedState.empty(4, 10, torch.device("cpu"))
    offs = torch.arange(-2, 3)
    for b in which:
        base = b * T
        pos = np.arange(base, base + T)
        slots, tok = sh.select_random(torch.from_numpy(priorities(0, RANDOM_STREAM, pos)), base, 4)
        qkey = torch.from_numpy(priorities(0, QUANTILE_STREAM, pos))
        st.update(xs[b], BatchInfo(base, CTX, offs, None, qkey, slots, tok), None)
        st.flush()
        sh.n_tokens += T
    return st, sh


def merged(
    a: tuple[GroupState, SharedState], b: tuple[GroupState, SharedState]
) -> tuple[GroupState, SharedState]:
    st, sh = copy.deepcopy(a)
    slots, cand = sh.merge_random(b[1].r_key, b[1].r_pos)
    st.merge(b[0], slots, cand)
    return st, sh


def presented(s: tuple[GroupState, SharedState]) -> dict[str, object]:
    st, sh = s
    t = st.t
    o = sort_slots(t["top_key"], t["top_pos"])
    ro = sort_slots(sh.r_key.view(1, -1), sh.r_pos.view(1, -1))[0]
    q = sort_slots(t["q_key"].view(-1, 3), t["q_pos"].view(-1, 3))
    return {
        "top_pos": t["top_pos"].gather(1, o),
        "top_key": t["top_key"].gather(1, o),
        "top_win": torch.take_along_dim(t["top_win"], o[..., None], 1),
        "r_pos": sh.r_pos[ro],
        "r_win": t["r_win"][:, ro],
        "q_pos": t["q_pos"].view(-1, 3).gather(1, q),
        "q_val": t["q_val"].view(-1, 3).gather(1, q),
        "hist": t["hist"],
        "active": t["active"],
        "vmin": t["vmin"],
        "exact": st.exact,
    }


def same(a: dict[str, object], b: dict[str, object]) -> None:
    for k in a:
        va, vb = a[k], b[k]
        if isinstance(va, torch.Tensor):
            assert isinstance(vb, torch.Tensor)
            assert torch.equal(va.nan_to_num(123.0), vb.nan_to_num(123.0)), k
        else:
            assert va == vb, k


def test_merges_are_exact_in_any_order() -> None:
    xs = batches(6)
    whole = presented(run(xs, list(range(6))))
    a, b, c = run(xs, [0, 1]), run(xs, [2, 3]), run(xs, [4, 5])
    same(whole, presented(merged(merged(a, b), c)))
    same(whole, presented(merged(c, merged(b, a))))
    same(whole, presented(run(xs, [5, 3, 1, 0, 2, 4])))


def test_top_examples_are_the_brute_force_top_k() -> None:
    xs = batches(4, seed=1)
    st, _ = run(xs, [0, 1, 2, 3])
    p = presented((st, _))
    x = torch.cat(xs)  # [tokens, N], positions are row indices
    for n in range(N):
        want = sorted(range(x.shape[0]), key=lambda i: (-float(x[i, n]), i))[:K]
        assert p["top_pos"][n].tolist() == want  # type: ignore[index]


def test_state_size_does_not_grow_with_the_corpus() -> None:
    xs = batches(8)
    small, big = run(xs, [0, 1])[0], run(xs, list(range(8)))[0]
    size = lambda s: {k: (tuple(v.shape), v.dtype) for k, v in s.t.items()}  # noqa: E731
    assert size(small) == size(big)
    assert all(int(v) != EMPTY for v in big.t["top_pos"].flatten())


def brute_force_check(
    st: GroupState, sh: SharedState, xs: list[torch.Tensor], which: list[int]
) -> None:
    """Every statistic of the state against plain loops over every token (float64 numpy)."""
    pos = np.concatenate([np.arange(b * T, (b + 1) * T) for b in which])
    x = torch.cat([xs[b] for b in which]).double().numpy()  # [tokens, N]
    qpr = priorities(0, QUANTILE_STREAM, pos)
    p = presented((st, sh))
    cal = st.cal
    for n in range(N):
        v = x[:, n]
        order = sorted(range(len(pos)), key=lambda i: (-v[i], pos[i]))[:K]
        assert p["top_pos"][n].tolist() == pos[order].tolist(), n  # type: ignore[index]
        for slot, i in enumerate(order):  # windows: the node's activations around the token
            w = p["top_win"][n, slot].numpy()  # type: ignore[index]
            row0 = pos[i] - pos[i] % CTX
            for o, a in zip(range(-2, 3), w, strict=True):
                q = pos[i] + o
                if row0 <= q < row0 + CTX:
                    assert a == xs[q // T][q % T, n], (n, slot, o)
                else:
                    assert np.isnan(a)
        bounds = cal.bounds[n].double().numpy()
        for b in range(len(LEVELS)):
            hi = bounds[b + 1] if b + 1 < len(LEVELS) else np.inf
            inside = np.flatnonzero((v >= bounds[b]) & (v < hi))
            want = sorted(inside, key=lambda i: (qpr[i], pos[i]))[:PER_Q]
            got = p["q_pos"][n * len(LEVELS) + b]  # type: ignore[index]
            assert got[got != EMPTY].tolist() == pos[want].tolist(), (n, b)
        d = v - float(cal.shift[n])
        mom = st.power_sums(len(v))[:, n]
        for k in range(4):  # float32 differences: ~1e-7 of the largest term
            want = (d ** (k + 1)).mean()
            assert abs(mom[k] - want) <= 1e-5 * abs(want) + 1e-6 * np.abs(d).max() ** (k + 1)
        assert int(st.t["active"][n]) == int((v > 0).sum())
        assert float(st.t["vmin"][n]) == v.min()
        u = (v.astype(np.float32) - cal.hist_lo[n].numpy()) * cal.hist_scale[n].numpy()
        idx = np.clip(np.floor(u), -1, BINS).astype(int) + 1
        assert st.t["hist"][n].tolist() == np.bincount(idx, minlength=BINS + 2).tolist(), n


def test_ties_follow_the_total_order_in_any_batch_order_and_split() -> None:
    xs = batches(6, seed=2, ties=True)
    assert (xs[0] == 0).float().mean() > 0.4  # mostly ties
    for which in ([0, 1, 2, 3, 4, 5], [5, 3, 1, 0, 2, 4]):  # increasing positions, and not
        brute_force_check(*run(xs, which), xs, which)
    a, b = run(xs, [1, 4]), run(xs, [5, 0, 3, 2])
    brute_force_check(*merged(a, b), xs, list(range(6)))
    brute_force_check(*merged(b, a), xs, list(range(6)))


def test_no_ties_every_statistic_is_the_brute_force_one() -> None:
    xs = batches(5, seed=3)
    brute_force_check(*run(xs, list(range(5))), xs, list(range(5)))
