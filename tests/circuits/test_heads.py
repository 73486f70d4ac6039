"""Head detectors against loops over the attention patterns, the training probe, and a
hand-built induction circuit whose heads are known by construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lenscope.circuits.folding import circuit_weights
from lenscope.circuits.heads import find_induction_circuit, head_scores
from lenscope.circuits.positional import offset_preference, positional_scores
from lenscope.data.repeated import repeated_tokens
from lenscope.errors import InputError
from lenscope.train.probes import induction_probe
from tests.circuits.models import induction_model, random_model


def test_head_scores_match_loops_and_the_training_probe() -> None:
    model = random_model(2, "LN", d_vocab=200, n_ctx=24)
    hs = head_scores(model, seq_len=8, n_seqs=3, seed=2)
    toks = repeated_tokens(model, 8, 3, seed=2)
    _, cache = model.run_with_cache(toks, names_filter=lambda n: n.endswith("hook_pattern"))
    for layer in range(2):
        pat = cache[f"blocks.{layer}.attn.hook_pattern"].double().numpy()
        for h in range(3):
            prev = [pat[b, h, q, q - 1] for b in range(3) for q in range(1, 17)]
            dup = [pat[b, h, q, q - 8] for b in range(3) for q in range(9, 17)]
            ind = [pat[b, h, q, q - 7] for b in range(3) for q in range(9, 17)]
            assert hs.previous_token[layer][h] == pytest.approx(np.mean(prev), abs=1e-6)
            assert hs.duplicate_token[layer][h] == pytest.approx(np.mean(dup), abs=1e-6)
            assert hs.induction[layer][h] == pytest.approx(np.mean(ind), abs=1e-6)
    probe = induction_probe(model, seq_len=8, n_seqs=3, seed=2)
    np.testing.assert_allclose(hs.induction, probe.induction, atol=1e-6)
    np.testing.assert_allclose(hs.previous_token, probe.prev_token, atol=1e-6)
    assert hs.loss_first_half == pytest.approx(probe.loss_first_half, abs=1e-5)
    assert hs.loss_repeat_half == pytest.approx(probe.loss_repeat_half, abs=1e-5)


def test_finds_the_hand_built_induction_circuit() -> None:
    model = induction_model()
    circuit = find_induction_circuit(model)
    assert [h for h, _ in circuit.induction_heads] == ["L1.H0"]
    assert [h for h, _ in circuit.previous_token_heads] == ["L0.H0"]
    (pair,) = circuit.pairs
    assert pair.induction_head == "L1.H0" and pair.previous_token_head == "L0.H0"
    assert circuit.k_composition is not None
    best = circuit.k_composition.pairs()[0]
    assert (best.source, best.target) == ("L0.H0", "L1.H0")
    assert pair.k_composition == pytest.approx(best.score)
    assert pair.k_composition > 0.1 > circuit.k_composition.score((0, 1), (1, 0))
    s = circuit.scores
    assert s.loss_repeat_half < s.loss_first_half - 5.0  # it predicts the repeat
    assert s.duplicate_token[1][0] < 0.1  # attends one past the duplicate, not to it
    assert circuit.to_json()["found"] is True


def test_no_induction_head_without_a_second_layer() -> None:
    model = induction_model(two_layers=False)
    circuit = find_induction_circuit(model)
    assert circuit.induction_heads == [] and not circuit.found
    assert [h for h, _ in circuit.previous_token_heads] == ["L0.H0"]
    assert circuit.k_composition is None and circuit.pairs == []


def test_positional_offsets_find_the_previous_token_head() -> None:
    cw = circuit_weights(induction_model())
    assert offset_preference(cw, 0, 0).preferred_offset == 1


def test_offset_preferences_match_dense_loops() -> None:
    """Expected scores on random tokens (positions + mean embedding, the token's own covariance
    term at offset 0), softmax over keys 1..q, every offset over the queries 5..9."""
    model = random_model(1, "none", n_ctx=10)
    cw = circuit_weights(model)
    pref = offset_preference(cw, 0, 1, max_offset=4)
    P = model.W_pos.detach().double().numpy()  # type: ignore[union-attr]
    E = model.W_E.detach().double().numpy()
    Wq, Wk = (w[0, 1].detach().double().numpy() for w in (model.W_Q, model.W_K))
    bq = model.b_Q[0, 1].detach().double().numpy()
    mean = E.mean(0)
    own = np.mean([(e - mean) @ Wq @ Wk.T @ (e - mean) for e in E])
    dh = np.sqrt(model.cfg.d_head)
    for o in range(5):
        attn, cent = [], []
        for qi in range(5, 10):
            row = (
                np.array(
                    [
                        ((P[qi] + mean) @ Wq + bq) @ ((P[ki] + mean) @ Wk)
                        + (own if ki == qi else 0.0)
                        for ki in range(1, qi + 1)
                    ]
                )
                / dh
            )
            p = np.exp(row - row.max())
            p /= p.sum()
            attn.append(p[qi - o - 1])
            cent.append(row[qi - o - 1] - row.mean())
        assert pref.mean_attention[o] == pytest.approx(np.mean(attn), abs=1e-9)
        assert pref.mean_score[o] == pytest.approx(np.mean(cent), abs=1e-9)
    assert torch.isinf(positional_scores(cw, 0, 1)[0, 1])
    rotary = random_model(1, "LN", positional="rotary")
    with pytest.raises(InputError, match="learned positional"):
        offset_preference(circuit_weights(rotary), 0, 0)
