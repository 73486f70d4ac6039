"""Bad questions are one clear `InputError` each."""

from __future__ import annotations

import pytest

from lenscope.attribution.api import Debugger
from lenscope.attribution.questions import Logit, LogitDiff
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
