"""The baby GPT: nanoGPT's architecture (checked against a reference forward written here),
its training data, determinism, and the seed's trained chain."""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lenscope import HookedTransformer
from lenscope.errors import InputError
from lenscope.markov import empirical_transitions, transition_matrix
from lenscope.train.baby import (
    SEED_SEQUENCE,
    BabySettings,
    build_baby,
    train_baby,
    training_examples,
)


def nanogpt_forward(model: HookedTransformer, idx: torch.Tensor) -> torch.Tensor:
    """nanoGPT's GPT.forward (bias=False linears, LayerNorm with bias, tied wte) on our weights."""
    cfg = model.cfg
    B, T = idx.shape
    nh, d = cfg.n_heads, cfg.d_model
    x = model.W_E[idx] + model.W_pos[:T]  # type: ignore[index]
    for block in model.blocks:
        block = cast(Any, block)
        h = F.layer_norm(x, (d,), block.ln1.w, block.ln1.b, 1e-5)
        q, k, v = (h @ block.attn.w_qkv).split(d, dim=2)
        q, k, v = (t.view(B, T, nh, d // nh).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // nh)
        att = att.masked_fill(torch.ones(T, T).tril() == 0, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, d)
        x = x + y @ block.attn.w_o
        h = F.layer_norm(x, (d,), block.ln2.w, block.ln2.b, 1e-5)
        x = x + F.gelu(h @ block.mlp.W_in) @ block.mlp.W_out
    x = F.layer_norm(x, (d,), model.ln_final.w, model.ln_final.b, 1e-5)
    return x @ model.W_E.T


def test_architecture_is_the_seed_nanogpt() -> None:
    model = build_baby(BabySettings())
    assert sum(p.numel() for p in model.parameters()) == 12656  # the seed's count
    with torch.no_grad():
        for p in model.parameters():  # move LN weights/biases off 1/0 so they matter
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    idx = torch.tensor([[0, 1, 0], [1, 1, 1], [0, 0, 1]])
    with torch.no_grad():
        torch.testing.assert_close(model(idx), nanogpt_forward(model, idx), atol=1e-5, rtol=1e-5)
    cfg = model.cfg
    assert (cfg.d_vocab, cfg.n_ctx, cfg.n_layers, cfg.n_heads, cfg.d_model) == (2, 3, 4, 4, 16)


def test_training_examples_are_every_window() -> None:
    seq = [int(c) for c in SEED_SEQUENCE]
    X, Y = training_examples(seq, 3, 2)
    assert X.shape == (12, 3) and Y.shape == (12,)
    for i in range(12):
        assert X[i].tolist() == seq[i : i + 3] and int(Y[i]) == seq[i + 3]
    with pytest.raises(InputError, match="symbol 2 at position 1"):
        training_examples([0, 2, 1, 1], 3, 2)
    with pytest.raises(InputError, match="more than the context"):
        training_examples([0, 1, 1], 3, 2)
    with pytest.raises(InputError, match="steps"):
        train_baby(seq, BabySettings(steps=-1))


def test_training_is_deterministic_and_learns_the_sequence() -> None:
    seq = [int(c) for c in SEED_SEQUENCE]
    run = train_baby(seq, BabySettings(steps=50))
    again = train_baby(seq, BabySettings(steps=8))
    other = train_baby(seq, BabySettings(steps=8, seed=7))
    assert run.losses[:8] == again.losses
    assert other.losses[0] != again.losses[0]
    assert len(run.losses) == 50 and run.final_loss < run.losses[0] - 0.1
    # the loss is cross-entropy of the last position only, as in the seed notebook
    with torch.no_grad():
        first = F.cross_entropy(run.initial(run.X)[:, -1], run.Y)
    assert float(first) == pytest.approx(run.losses[0], abs=1e-6)
    init = transition_matrix(run.initial, 2, 3)
    assert np.abs(init.next_token_probs - 0.5).max() < 0.15  # near 50/50 at random init
    trained = transition_matrix(run.model, 2, 3)
    emp = empirical_transitions(SEED_SEQUENCE, 2, 3)
    for state in ("011", "101", "110"):  # deterministic successors in the data: next token 1
        assert trained.next_token_probs[trained.index(state), 1] > 0.6
    assert emp.unseen_states == ["000", "001", "010", "100"]
    assert not run.initial.training and not run.model.training
