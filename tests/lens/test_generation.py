"""The lens across a generation (rankings, layer_predictions, rankings_watch) and bad input."""

from __future__ import annotations

import pytest
import torch

from lenscope.errors import InputError
from lenscope.lens import TunedLens, lens_generation, logit_lens
from lenscope.lens.core import lens_logits
from tests.lens.fixtures import tiny, tokens


def _brute_rank(logits: torch.Tensor, ids: list[int]) -> list[list[int]]:
    """logits [B, N, V], ids N -> rank [B][N] = 1 + #tokens scoring strictly higher."""
    chosen = logits[:, torch.arange(len(ids)), ids]
    return ((logits > chosen[..., None]).sum(-1) + 1).tolist()


def test_greedy_rankings_match_brute_force_and_top_layer_ranks_one() -> None:
    m = tiny("gpt2", scale=3.0)
    prompt = tokens(m.cfg.d_vocab, 6)
    gen = lens_generation(m, prompt, 8)
    ref = m.generate(prompt, 8, return_text=False)
    assert isinstance(ref, torch.Tensor)
    assert gen.generated_ids == ref[0, 6:].tolist()
    _, logits = lens_logits(m, ref)
    assert gen.rankings == _brute_rank(logits[:, 0, 5:13], gen.generated_ids)
    assert gen.rankings[-1] == [1] * 8  # greedy: the model's own top token at the last layer
    assert len(gen.rankings) == m.cfg.n_layers + 1


def test_sampled_generation_is_seeded_and_matches_model_generate() -> None:
    m = tiny("modern")
    prompt = tokens(m.cfg.d_vocab, 4)
    a = lens_generation(m, prompt, 10, temperature=1.5, seed=7)
    b = lens_generation(m, prompt, 10, temperature=1.5, seed=7)
    ref = m.generate(prompt, 10, temperature=1.5, seed=7, return_text=False)
    assert isinstance(ref, torch.Tensor)
    assert a.generated_ids == b.generated_ids == ref[0, 4:].tolist()
    assert a.rankings == b.rankings
    _, logits = lens_logits(m, ref)
    assert a.rankings == _brute_rank(logits[:, 0, 3:13], a.generated_ids)


def test_watch_and_predictions_at_a_chosen_position() -> None:
    m = tiny("gpt2", tokenizer=True, scale=3.0)
    gen = lens_generation(m, "The keys to the", 3, watch=[" is", " are"], position=2, k=3)
    full = torch.tensor([gen.lens.token_ids])
    _, logits = lens_logits(m, full)
    row = logits[:, 0, 2]
    assert gen.position == 2
    assert [p.ids for p in gen.layer_predictions] == row.topk(3).indices.tolist()
    ids = [m.to_single_token(" is"), m.to_single_token(" are")]
    assert gen.rankings_watch.ids == ids
    assert (
        gen.rankings_watch.rank == ((row[:, None, :] > row[:, ids][..., None]).sum(-1) + 1).tolist()
    )
    default = lens_generation(m, "The keys to the", 2, watch=[" is"])
    assert default.position == default.n_prompt - 1


def test_multi_token_watch_uses_first_token_and_says_so() -> None:
    m = tiny("gpt2", tokenizer=True)
    assert m.tokenizer is not None
    text = " cabinetsXQ"
    pieces = m.tokenizer.str_tokens(m.tokenizer.encode(text))
    assert len(pieces) > 1
    res = logit_lens(m, "The keys", watch=[text, " is"])
    assert res.watched[0].id == m.tokenizer.encode(text)[0]
    assert res.watched[0].pieces == pieces
    assert len(res.notes) == 1 and repr(pieces[0]) in res.notes[0] and text in res.notes[0]
    assert res.watched[1].note is None


def test_bad_input_is_a_clear_error() -> None:
    m = tiny("gpt2", tokenizer=True)
    with pytest.raises(InputError, match="no token at all"):
        logit_lens(m, "The keys", watch=[""])
    res = logit_lens(m, "The keys")
    n = len(res.token_ids)
    with pytest.raises(InputError, match=f"position {n} is out of range"):
        res.layer_predictions(n)
    with pytest.raises(InputError, match="out of range"):
        lens_generation(m, "The keys", 2, position=-(n + 3))
    with pytest.raises(InputError, match=r"exceed .* context of 48; generate at most"):
        lens_generation(m, "The keys", 48)
    with pytest.raises(InputError, match=">= 0"):
        lens_generation(m, "The keys", -1)
    with pytest.raises(InputError, match="one sequence"):
        logit_lens(m, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(InputError, match="block boundaries"):
        logit_lens(m, "The keys", sublayers=True, tuned=TunedLens.for_model(m))
    with pytest.raises(InputError, match="k must be"):
        logit_lens(m, "The keys", k=0)
    bare = tiny("gpt2")
    with pytest.raises(InputError, match="no tokenizer"):
        logit_lens(bare, tokens(bare.cfg.d_vocab, 3), watch=[" is"])
    with pytest.raises(InputError, match="reads at most"):
        logit_lens(bare, tokens(bare.cfg.d_vocab, 49))


def test_an_over_long_prompt_is_too_long_for_the_context() -> None:
    m = tiny("gpt2", tokenizer=True)
    prompt = "The keys to the cabinet " * 20
    n = m.to_tokens(prompt).shape[1]
    assert n > m.cfg.n_ctx
    for n_new in (0, 3):
        with pytest.raises(InputError) as e:
            lens_generation(m, prompt, n_new)
        msg = str(e.value)
        assert f"too long for {m.cfg.name}'s context: {n} tokens > n_ctx = {m.cfg.n_ctx}" in msg
        assert "generate at most" not in msg
    ids = list(range(m.cfg.n_ctx + 1))  # token ids too: the same sentence
    with pytest.raises(InputError, match=rf"{m.cfg.n_ctx + 1} tokens > n_ctx = {m.cfg.n_ctx}"):
        lens_generation(m, ids, 0)
