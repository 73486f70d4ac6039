"""The shipped attention-only models: attn2 has induction heads fed by a previous-token head,
attn1 has none (both ship in assets/models)."""

from __future__ import annotations

import pytest

from lenscope import HookedTransformer, load_model
from lenscope.circuits.folding import circuit_weights
from lenscope.circuits.heads import find_induction_circuit
from lenscope.circuits.paths import path_expansion
from lenscope.data.repeated import repeated_tokens


def shipped(name: str) -> HookedTransformer:
    return load_model(name)


def test_attn2_has_an_induction_head_fed_by_a_previous_token_head() -> None:
    model = shipped("attn2")
    circuit = find_induction_circuit(model, weights=circuit_weights(model, freeze_scales=False))
    assert circuit.found, circuit.scores.induction
    assert all(h.startswith("L1.") for h, _ in circuit.induction_heads)
    assert circuit.scores.loss_repeat_half < circuit.scores.loss_first_half - 1.0
    assert circuit.k_composition is not None
    for pair in circuit.pairs:
        assert pair.previous_token_head.startswith("L0.")
        assert pair.previous_token_score >= 0.3
        # among layer-0 heads, the previous-token head composes most with the induction head
        layer1_head = int(pair.induction_head.split(".H")[1])
        k_scores = [circuit.k_composition.score((0, h), (1, layer1_head)) for h in range(4)]
        assert pair.k_composition == pytest.approx(max(k_scores))
        assert pair.k_composition > circuit.k_composition.baseline


def test_attn1_has_no_induction_head() -> None:
    model = shipped("attn1")
    circuit = find_induction_circuit(model)
    assert not circuit.found
    assert max(max(row) for row in circuit.scores.induction) < 0.3


def test_attn2_path_expansion_is_exact() -> None:
    model = shipped("attn2")
    toks = repeated_tokens(model, 30, 1, seed=3)[0]
    assert path_expansion(model, toks).max_abs_error < 1e-4


def test_attn2_offset_preferences_agree_with_its_attention() -> None:
    """The weights' best offsets against the model's own attention on random tokens (key 0, the
    BOS sink, left out). Counting key 0 used to make every layer-1 head prefer the cap (16)."""
    import torch

    from lenscope.circuits.positional import all_offset_preferences
    from lenscope.data.repeated import probe_pool

    model = shipped("attn2")
    pool = probe_pool(model)
    prefs = {p.head: p for p in all_offset_preferences(circuit_weights(model), pool=pool)}
    assert prefs["L0.H2"].preferred_offset == 1  # the previous-token head
    assert all(p.preferred_offset < 16 for p in prefs.values())
    g = torch.Generator().manual_seed(0)
    toks = pool[torch.randint(0, len(pool), (16, 100), generator=g)]
    toks = torch.cat([torch.zeros(16, 1, dtype=torch.long), toks], dim=1)  # BOS is id 0
    with torch.no_grad():
        _, cache = model.run_with_cache(toks, names_filter="blocks.0.attn.hook_pattern")
    pat = cache["blocks.0.attn.hook_pattern"][:, :, :, 1:]
    pat = pat / pat.sum(-1, keepdim=True)  # attention among keys 1..q
    q = torch.arange(17, 101)
    for h in (1, 2, 3):  # L0.H0 is nearly flat: no clear peak to compare
        seen = [float(pat[:, h, q, q - 1 - o].mean()) for o in range(17)]
        assert prefs[f"L0.H{h}"].preferred_offset == max(range(17), key=seen.__getitem__)
