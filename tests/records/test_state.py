"""The mergeable state: exact k-selection, order-independent merges, bounded size."""

from __future__ import annotations

import copy

import numpy as np
import torch

from lenscope.records.prio import QUANTILE_STREAM, RANDOM_STREAM, priorities
from lenscope.records.select import EMPTY, slot_merge, sort_slots
from lenscope.records.state import BatchInfo, GroupState, SharedState, calibrate

N, T, CTX, K = 12, 64, 16, 5


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


def batches(n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(T, N, generator=g) ** 3 for _ in range(n)]


def run(
    xs: list[torch.Tensor], which: list[int], heads: bool = False
) -> tuple[GroupState, SharedState]:
    cal = calibrate(torch.cat(xs).T, (0.5, 0.9), 6)
    st = GroupState(N, cal, K, 4, 3, 5, 6, heads=False)
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
            assert torch.equal(va.nan_to_num(123.0), vb.nan_to_num(123.0)), k  # type: ignore[union-attr]
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
