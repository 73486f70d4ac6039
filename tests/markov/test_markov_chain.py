"""transition_matrix / chain_from_probs against brute force, plus classes and stationary laws."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lenscope.errors import InputError
from lenscope.markov import transition_matrix
from lenscope.markov.chain import chain_from_probs
from lenscope.markov.classes import classify
from lenscope.markov.states import enumerate_states, state_name
from tests.markov.lookup import LookupModel, context_index, random_table, softmax


def test_enumerate_states() -> None:
    assert len(enumerate_states(2, 3)) == 8
    assert len(enumerate_states(2, 3, include_short=True)) == 14
    assert len(enumerate_states(3, 2, include_short=True)) == 12
    assert enumerate_states(2, 2) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert enumerate_states(2, 2, include_short=True)[:3] == [(0,), (1,), (0, 0)]
    assert state_name((1, 0, 1), 2) == "101"
    assert state_name((3, 11, 0), 12) == "3.11.0"


def brute_force(table: torch.Tensor, V: int, C: int, include_short: bool) -> np.ndarray:
    states = enumerate_states(V, C, include_short)
    P = np.zeros((len(states), len(states)))
    for i, s in enumerate(states):
        probs = softmax(table[context_index(s, V)].tolist())
        for t in range(V):
            nxt = (*s, t)[-C:]
            P[i, states.index(nxt)] += probs[t]
    return P


@pytest.mark.parametrize(
    ("V", "C", "include_short"), [(2, 3, False), (2, 3, True), (3, 2, True), (4, 1, False)]
)
def test_transition_matrix_matches_brute_force(V: int, C: int, include_short: bool) -> None:
    table = random_table(V, C, seed=V * 10 + C)
    chain = transition_matrix(LookupModel(table, V, C), V, C, include_short)
    expected = brute_force(table, V, C, include_short)
    np.testing.assert_allclose(chain.P, expected, atol=1e-12)
    np.testing.assert_allclose(chain.P.sum(axis=1), 1.0, atol=1e-12)
    assert (chain.P >= 0).all()
    assert chain.states == [state_name(s, V) for s in enumerate_states(V, C, include_short)]
    assert chain.next_token_probs.shape == (len(chain.states), V)


def test_fourteen_states_and_short_prefixes_are_transient() -> None:
    chain = transition_matrix(LookupModel(random_table(2, 3), 2, 3), 2, 3, include_short=True)
    assert len(chain.states) == 14 and chain.P.shape == (14, 14)
    assert chain.states[:6] == ["0", "1", "00", "01", "10", "11"]
    for short in chain.states[:6]:
        assert chain.kind_of(short) == "transient"
    # "10" + token 1 -> "101"; "101" + token 1 -> "011" (oldest token dropped)
    assert chain.P[chain.index("10"), chain.index("101")] > 0
    assert chain.P[chain.index("101"), chain.index("011")] > 0


def test_stationary_distribution_satisfies_balance() -> None:
    chain = transition_matrix(LookupModel(random_table(2, 3, seed=3), 2, 3), 2, 3, True)
    pi = chain.stationary
    assert pi is not None
    np.testing.assert_allclose(pi @ chain.P, pi, atol=1e-12)
    assert pi.sum() == pytest.approx(1.0)
    assert (pi[:6] == 0).all() and (pi[6:] > 0).all()
    (closed,) = chain.closed_classes
    assert closed.kind == "recurrent" and closed.period == 1 and len(closed.states) == 8


def test_absorbing_chain_from_model_with_minus_inf_logits() -> None:
    # V=2, C=2: "00" always emits 0 and "11" always emits 1; "01"/"10" are 50/50.
    table = torch.zeros(6, 2, dtype=torch.float64)
    table[context_index((0, 0), 2)] = torch.tensor([0.0, -torch.inf])
    table[context_index((1, 1), 2)] = torch.tensor([-torch.inf, 0.0])
    chain = transition_matrix(LookupModel(table, 2, 2), 2, 2)
    kinds = {tuple(c.states): c.kind for c in chain.classes}
    assert kinds == {("00",): "absorbing", ("01", "10"): "transient", ("11",): "absorbing"}
    assert chain.stationary is None  # two closed classes: no unique stationary law
    assert [c.stationary for c in chain.closed_classes] == [[1.0], [1.0]]


def test_periodic_recurrent_class() -> None:
    # V=2, C=1: "0" -> "1" -> "0" deterministically: period 2, power iteration would not converge.
    chain = chain_from_probs(np.array([[0.0, 1.0], [1.0, 0.0]]), 2, 1)
    (cls,) = chain.classes
    assert cls.kind == "recurrent" and cls.period == 2
    assert chain.stationary is not None
    np.testing.assert_allclose(chain.stationary, [0.5, 0.5])


def test_mixed_classes_with_tol() -> None:
    probs = np.array([[0.5, 0.5], [0.4, 0.6], [0.3, 0.7], [1e-9, 1 - 1e-9]])  # V=2, C=2
    exact = chain_from_probs(probs, 2, 2)
    assert [c.kind for c in exact.classes] == ["recurrent"]
    loose = chain_from_probs(probs, 2, 2, tol=1e-6)
    assert [(c.states, c.kind) for c in loose.classes] == [
        (["00", "01", "10"], "transient"),
        (["11"], "absorbing"),
    ]
    assert loose.stationary is not None
    np.testing.assert_allclose(loose.stationary, [0, 0, 0, 1])


def test_model_is_called_in_eval_mode_and_restored() -> None:
    model = LookupModel(random_table(2, 3), 2, 3)
    model.train()
    transition_matrix(model, 2, 3, include_short=True, batch_size=3)
    assert model.training
    assert all(not training for _, training in model.calls)
    assert {shape[1] for shape, _ in model.calls} == {1, 2, 3}
    assert max(shape[0] for shape, _ in model.calls) == 3


def test_last_position_only_logits_are_accepted() -> None:
    table = random_table(2, 2, seed=7)
    full = LookupModel(table, 2, 2)
    chain_a = transition_matrix(full, 2, 2)
    chain_b = transition_matrix(lambda x: full(x)[:, -1, :], 2, 2)
    np.testing.assert_allclose(chain_a.P, chain_b.P)


def test_to_json_is_plain() -> None:
    chain = transition_matrix(LookupModel(random_table(2, 2), 2, 2), 2, 2, True)
    data = json.loads(json.dumps(chain.to_json()))
    assert data["states"] == chain.states
    assert data["next_state"][chain.index("01")] == ["10", "11"]
    assert data["classes"][-1]["kind"] == "recurrent"


def test_too_many_states() -> None:
    with pytest.raises(InputError, match=r"V\^C = 2\^13 = 8192 states, limit 4096"):
        transition_matrix(lambda x: x, 2, 13)
    with pytest.raises(InputError, match="too big"):
        enumerate_states(65, 2)


def test_wrong_vocab_and_bad_outputs() -> None:
    model = LookupModel(random_table(3, 2), 3, 2)
    with pytest.raises(InputError, match="vocabulary size 3 but V = 2"):
        transition_matrix(model, 2, 2)
    with pytest.raises(InputError, match="expected a logits tensor"):
        transition_matrix(lambda x: x.tolist(), 2, 2)
    with pytest.raises(InputError, match="shape"):
        transition_matrix(lambda x: torch.zeros(1, 2, 2), 2, 2)
    with pytest.raises(InputError, match="NaN/inf"):
        transition_matrix(lambda x: torch.full((*x.shape, 2), float("nan")), 2, 2)
    with pytest.raises(InputError, match="expected"):
        chain_from_probs(np.full((3, 2), 0.5), 2, 2)
    with pytest.raises(InputError, match="summing to 1"):
        chain_from_probs(np.full((4, 2), 0.7), 2, 2)


def test_unknown_state_name() -> None:
    chain = chain_from_probs(np.full((4, 2), 0.5), 2, 2)
    with pytest.raises(InputError, match="'012' is not in this chain"):
        chain.index("012")


def test_every_state_converges_to_the_stationary_law() -> None:
    chain = transition_matrix(LookupModel(random_table(3, 2, seed=1), 3, 2), 3, 2, True)
    reach = np.linalg.matrix_power(chain.P, 200)
    assert chain.stationary is not None
    np.testing.assert_allclose(reach, np.tile(chain.stationary, (len(chain.states), 1)), atol=1e-9)


@pytest.mark.parametrize(("V", "C"), [(2, 3), (3, 2), (1, 2)])
def test_fast_path_agrees_with_tarjan(V: int, C: int) -> None:
    chain = transition_matrix(LookupModel(random_table(V, C, seed=2), V, C), V, C, True)
    general = classify(chain.next_state, chain.next_token_probs)
    assert [[chain.states[i] for i in g.members] for g in general] == [
        c.states for c in chain.classes
    ]
    assert [(g.kind, g.period) for g in general] == [(c.kind, c.period) for c in chain.classes]
    for g, c in zip(general, chain.classes, strict=True):
        if g.stationary is None:
            assert c.stationary is None
        else:
            np.testing.assert_allclose(g.stationary, c.stationary or [], atol=1e-12)
