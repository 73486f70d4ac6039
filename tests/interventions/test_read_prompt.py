"""One reader of prompts: the engine's batches and the server's bounds read text and ids alike."""

from __future__ import annotations

import re

import pytest

from lenscope.errors import InputError
from lenscope.interventions.prompts import encode_prompts, read_prompt
from lenscope.model import load_model
from lenscope.server.deps import prompt_ids


def test_text_and_ids_read_the_same_everywhere() -> None:
    model = load_model("mini")
    assert model.tokenizer is not None
    text = "def add(a, b):\n    return a + b"
    ids = model.tokenizer.encode(text, prepend_bos=model.cfg.default_prepend_bos)
    assert read_prompt(model, text) == ids
    assert prompt_ids(model, text) == ids
    assert read_prompt(model, ids) == ids == prompt_ids(model, ids)
    batch = encode_prompts(model, [text, ids[:3]])
    assert batch.lengths == [len(ids), 3]
    assert batch.tokens[0].tolist() == ids
    assert batch.tokens[1, :3].tolist() == ids[:3]


@pytest.mark.parametrize(
    ("prompt", "needle"),
    [
        ([], "prompt 1 is empty: give some text"),
        ([0, -1], "prompt 1: token id -1 is outside the vocabulary (0.."),
    ],
)
def test_bad_prompts_name_the_prompt(prompt: list[int], needle: str) -> None:
    model = load_model("mini")
    with pytest.raises(InputError, match=re.escape(needle)):
        encode_prompts(model, [[1, 2], prompt])
    with pytest.raises(InputError, match=re.escape(needle.replace("prompt 1", "the text"))):
        prompt_ids(model, prompt, "the text")
    big = [model.cfg.d_vocab]
    with pytest.raises(InputError, match=re.escape(f"id {model.cfg.d_vocab} is outside")):
        read_prompt(model, big)
