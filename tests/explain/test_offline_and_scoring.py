"""Splitting, simulation scoring and the offline token-statistics explainer, against brute force."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from lenscope.explain import OfflineExplainer, explain_node, explain_records
from lenscope.explain.base import score_simulation, split_examples
from lenscope.records import Records
from lenscope.records.results import Example, Histogram, NodeRecord, Stats


def example(set_: str, rank: int, tokens: list[int], acts: list[float]) -> Example:
    return Example(set_, rank, rank, max(acts), tokens, [f"t{t}" for t in tokens], acts, 0)


def record(top: list[Example], rnd: list[Example]) -> NodeRecord:
    stats = Stats(100, 0.0, 1.0, 1.0, 0.0, 0.0, 0.5, 5.0, 0.0)
    return NodeRecord(
        "L0.N1",
        "neuron",
        0,
        1,
        "blocks.0.mlp.hook_post",
        stats,
        Histogram(0, 1, [0], 1.0),
        top,
        rnd,
        [],
        [],
        [],
        [],
        "m",
        "fp",
    )


def rule(tokens: list[int]) -> list[float]:
    """Token 3 gives 5; token 4 right after token 2 gives 3; everything else 0."""
    return [
        5.0 if t == 3 else 3.0 if (t == 4 and i and tokens[i - 1] == 2) else 0.0
        for i, t in enumerate(tokens)
    ]


def token_rule(tokens: list[int]) -> list[float]:
    """A pure token detector: token 3 gives 5, token 5 gives 2."""
    return [{3: 5.0, 5: 2.0}.get(t, 0.0) for t in tokens]


def synthetic(seed: int = 0, f=rule) -> NodeRecord:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, 8, 12).tolist() for _ in range(20)]
    seqs.sort(key=lambda s: -max(f(s)))
    top = [example("top", i, s, f(s)) for i, s in enumerate(seqs[:10])]
    rnd = [example("random", i, s, f(s)) for i, s in enumerate(seqs[10:])]
    return record(top, rnd)


def test_split_is_one_to_one_and_disjoint() -> None:
    r = synthetic()
    s = split_examples(r)
    ids = lambda xs: [(e.set, e.rank) for e in xs]  # noqa: E731
    assert not set(ids(s.explain)) & set(ids(s.heldout))
    for part in (s.explain, s.heldout):
        assert sum(e.set == "top" for e in part) == sum(e.set == "random" for e in part) == 5
    r.random = r.random[:3]
    s = split_examples(r)
    assert sum(e.set == "top" for e in s.heldout) == sum(e.set == "random" for e in s.heldout) == 1


def test_score_is_pooled_correlation_and_control_is_chance_level() -> None:
    rng = np.random.default_rng(1)
    exs = [example("top", i, [0] * 30, rng.normal(size=30).tolist()) for i in range(20)]
    sims = [(np.array(e.acts) + rng.normal(size=30)).tolist() for e in exs]
    sc = score_simulation(exs, sims, seed=0)
    truth = np.concatenate([e.acts for e in exs])
    assert sc.score == pytest.approx(np.corrcoef(truth, np.concatenate(sims))[0, 1], abs=1e-12)
    assert sc.n_tokens == 600
    # the 95th percentile of correlation under shuffling is about 1.645 / sqrt(n)
    assert sc.control == pytest.approx(1.645 / np.sqrt(600), abs=0.03)
    assert (
        score_simulation(exs, [[1.0] * 30] * 20).score == 0.0
    )  # a constant guess explains nothing


def test_offline_lookup_is_the_mean_activation_per_token_and_context() -> None:
    r = synthetic()
    ex = split_examples(r).explain
    lk = OfflineExplainer(n_tokens=3, n_contexts=2).lookup(ex)
    by_tok: dict[int, list[float]] = defaultdict(list)
    for e in ex:
        for t, a in zip(e.token_ids, e.acts, strict=True):
            by_tok[t].append(a)
    means = {t: float(np.mean(v)) for t, v in by_tok.items()}
    best = sorted(means, key=lambda t: (-means[t], t))[:3]
    assert lk.tokens == pytest.approx({t: means[t] for t in best})
    assert next(iter(lk.tokens)) == 3
    assert lk.contexts[(2, 4)] == pytest.approx(3.0)


def test_offline_explains_a_token_detector_perfectly() -> None:
    r = synthetic(f=token_rule)
    x = explain_node(OfflineExplainer(), r)
    assert x.status == "ok" and x.explainer == "offline"
    assert x.text.startswith("Token statistics") and '"t3"' in x.text
    assert x.score == pytest.approx(1.0, abs=1e-9)
    held = split_examples(r).heldout
    assert x.n_tokens == sum(len(e.acts) for e in held)


def test_offline_explain_records_writes_every_node(records_dir: Path, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    shutil.copytree(records_dir, rec)
    recs = Records(rec)
    ids = recs.node_ids()
    s = explain_records(recs, OfflineExplainer(), progress=False)
    assert s.nodes == len(ids) and s.ok + s.failed == len(ids)
    rows = {x.node_id: x for x in recs.explanations()}
    assert set(rows) == set(ids)
    node = recs.node(ids[5])
    direct = explain_node(OfflineExplainer(), node)
    assert node.explanations[0].text == direct.text
    assert node.explanations[0].score == pytest.approx(direct.score)
