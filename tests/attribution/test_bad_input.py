"""Bad questions are one clear `InputError` each."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lenscope.attribution.api import Debugger
from lenscope.attribution.compare import Side
from lenscope.attribution.questions import AttentionScore, Logit, LogitDiff
from lenscope.errors import InputError
from lenscope.interventions.spec import InterventionSet, ablate
from tests.attribution.factory import prompt, random_model, tokenized_model


@pytest.fixture(scope="module")
def dbg(tmp_path_factory: pytest.TempPathFactory) -> Debugger:
    return Debugger(tokenized_model(tmp_path_factory.mktemp("tok")))


def test_tokens_not_in_the_vocabulary(dbg: Debugger) -> None:
    with pytest.raises(InputError, match="not in the vocabulary"):
        dbg.why("w1 w2", Logit(token=10_000))
    with pytest.raises(InputError, match="not one token"):
        dbg.why("w1 w2", LogitDiff(target=[" w3 w4"], distractor=[" w5"]))
    with pytest.raises(InputError, match="not in the vocabulary"):
        dbg.why("w1 w2", LogitDiff(target=[" zebra"], distractor=[" w5"]))
    with pytest.raises(InputError, match="empty string"):
        dbg.why("w1 w2", Logit(token=""))


def test_empty_and_overlapping_token_sets(dbg: Debugger) -> None:
    with pytest.raises(InputError, match="target token set is empty"):
        dbg.why("w1 w2", LogitDiff(target=[], distractor=[" w5"]))
    with pytest.raises(InputError, match="distractor token set is empty"):
        dbg.why("w1 w2", LogitDiff(target=[" w5"], distractor=[]))
    with pytest.raises(InputError, match="both a target and a distractor"):
        dbg.why("w1 w2", LogitDiff(target=[" w5", " w6"], distractor=[" w6"]))


def test_positions_beyond_the_prompt(dbg: Debugger) -> None:
    with pytest.raises(InputError, match="beyond the prompt"):
        dbg.why("w1 w2", Logit(token=3, position=9))
    with pytest.raises(InputError, match="beyond the prompt"):
        dbg.why("w1 w2", Logit(token=3), InterventionSet.of(*ablate("L0.H1@9")))
    with pytest.raises(InputError, match="beyond the prompt"):
        dbg.trace("w1 w2", Logit(token=3), ["L1.N2@5"])


def test_unknown_nodes_and_empty_prompts(dbg: Debugger) -> None:
    with pytest.raises(InputError, match="unknown node id"):
        dbg.why("w1 w2", Logit(token=3), InterventionSet.of(*ablate("L0.head1")))
    with pytest.raises(InputError, match="layer 7 does not exist"):
        dbg.why("w1 w2", Logit(token=3), InterventionSet.of(*ablate("L7.H1")))
    with pytest.raises(InputError, match="neuron 9999 does not exist"):
        dbg.trace("w1 w2", Logit(token=3), ["L1.N9999"])
    with pytest.raises(InputError, match="no SAE is spliced"):
        dbg.trace("w1 w2", Logit(token=3), ["L1.resid_post.F3"])
    with pytest.raises(InputError, match="top_k"):
        dbg.why("w1 w2", Logit(token=3), top_k=0)


def test_model_without_tokenizer_needs_ids() -> None:
    d = Debugger(random_model("gpt2"))
    with pytest.raises(InputError, match="no tokenizer"):
        d.why("some text", Logit(token=3))
    with pytest.raises(InputError, match="no tokenizer"):
        d.why(prompt(), Logit(token=" a"))
    with pytest.raises(InputError, match="outside the vocabulary"):
        d.why([1, 2, 500], Logit(token=3))
    with pytest.raises(InputError, match="empty"):
        d.why([], Logit(token=3))
    with pytest.raises(InputError, match="no prompts"):
        d.why_batch([], Logit(token=3))


def test_text_prompts_and_tokens_resolve(dbg: Debugger) -> None:
    r = dbg.why("w1 w2 w3", LogitDiff(target=[" w4"], distractor=[" w5"]), measure=0)
    assert r.targets[0].token.strip() == "w4" and r.targets[0].asked == " w4"
    assert [t.strip() for t in r.prompt.tokens[-3:]] == ["w1", "w2", "w3"]
    assert r.prompt.tokens[0] == "<|endoftext|>"


def test_messages_speak_to_library_and_http_users_alike(dbg: Debugger) -> None:
    with pytest.raises(InputError, match=r"starts from one node; give exactly one \(got 2\)$"):
        dbg.trace("w1 w2 w3", Logit(token=3), ["L1.H0", "L0.H1"], "downstream")
    mean = InterventionSet.of(*ablate("L0.H1", mode="mean"))
    with pytest.raises(InputError, match="reference prompts") as e:
        dbg.why("w1 w2 w3", Logit(token=3), mean)
    assert "`reference`" in str(e.value) and "InterventionSet" not in str(e.value)


def test_attention_descriptions_name_the_positions_read(dbg: Debugger) -> None:
    ids = dbg.model.to_tokens("w1 w2 w3 w4")[0].tolist()
    n = len(ids)
    res = dbg.attention(ids, AttentionScore(layer=1, head=0, key_pos=1))
    assert res.description == f"attention score L1.H0 query {n - 1} -> key 1"
    assert (res.query_position, res.key_position) == (n - 1, 1)
    res = dbg.attention(ids, AttentionScore(layer=1, head=0, query_pos=-2, key_pos=-3))
    assert res.description == f"attention score L1.H0 query {n - 2} -> key {n - 3}"
    q = AttentionScore(layer=1, head=0, key_pos=1)
    assert dbg.why(ids, q, measure=0).description.endswith(f"query {n - 1} -> key 1")
    # two prompts of different lengths: no one number is the last position
    cmp = dbg.compare(q, Side(prompt=ids), Side(prompt=ids[:-1]), measure=0)
    assert cmp.description == "attention score L1.H0 query at the last position -> key 1"
    cmp = dbg.compare(q, Side(prompt=ids), Side(prompt=ids), measure=0)
    assert cmp.description == f"attention score L1.H0 query {n - 1} -> key 1"


def test_attention_positions_take_either_spelling() -> None:
    short = AttentionScore.model_validate({"layer": 1, "head": 0, "query_pos": 3, "key_pos": 1})
    long = {"layer": 1, "head": 0, "query_position": 3, "key_position": 1}
    assert AttentionScore.model_validate(long) == short
    assert short.model_dump()["key_pos"] == 1  # results echo the canonical name
    with pytest.raises(ValidationError, match="give key_pos or key_position"):
        AttentionScore.model_validate({"layer": 1, "head": 0, "key_pos": 1, "key_position": 1})


def test_an_attention_key_outside_the_sliding_window_is_refused() -> None:
    """The model never reads a key outside the layer's window: its score is masked, so the
    question has no value; keys inside the window are scored as the pattern hook shows."""
    import torch

    from lenscope import HookedTransformer, ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_vocab=50,
        n_ctx=32,
        positional="rotary",
        sliding_window=3,
    )
    m = HookedTransformer(cfg).eval()
    ids = torch.randint(0, 50, (8,)).tolist()
    d = Debugger(m)
    with pytest.raises(InputError, match=r"sliding window of 3 keys.*outside query position 7"):
        d.why(ids, AttentionScore(layer=1, head=0, query_pos=7, key_pos=1))
    r = d.why(ids, AttentionScore(layer=1, head=0, query_pos=7, key_pos=5))
    _, cache = m.run_with_cache(torch.tensor([ids]), names_filter="blocks.1.attn.hook_attn_scores")
    assert r.value == pytest.approx(
        float(cache["blocks.1.attn.hook_attn_scores"][0, 0, 7, 5]), rel=1e-4
    )
