"""`generate`: bad settings and inputs are one clear InputError; text out has no added BOS."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lenscope import HookedTransformer, load_model
from lenscope.errors import InputError
from lenscope.model.load import shipped_models_dir


@pytest.fixture(scope="module")
def mini() -> HookedTransformer:
    return load_model(shipped_models_dir() / "mini")  # n_ctx 256, byte-level BPE


PROMPT = "def add(a, b):\n    return"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"top_k": 0, "temperature": 1.0}, "top_k must be an integer >= 1"),
        ({"top_k": -3, "temperature": 1.0}, "top_k must be"),
        ({"top_k": 2.5, "temperature": 1.0}, "top_k must be"),
        ({"top_k": 0}, "top_k must be"),  # refused even where greedy decoding would ignore it
        ({"temperature": -1}, "temperature must be a finite number >= 0"),
        ({"temperature": float("nan")}, "temperature must be"),
        ({"temperature": float("inf")}, "temperature must be"),
        ({"temperature": "hot"}, "temperature must be"),
        ({"max_new_tokens": -1}, "max_new_tokens must be an integer >= 0"),
        ({"max_new_tokens": 2.5}, "max_new_tokens must be"),
        ({"max_new_tokens": True}, "max_new_tokens must be"),
        ({"max_new_tokens": 10_000}, "max_new_tokens must lie in"),
        ({"max_new_tokens": 250}, "exceed the context"),
        ({"seed": "abc", "temperature": 1.0}, "seed must be an integer"),
    ],
)
def test_bad_settings_are_clear_errors(
    mini: HookedTransformer, kwargs: dict[str, Any], needle: str
) -> None:
    kwargs = {"max_new_tokens": 3} | kwargs
    with pytest.raises(InputError, match=needle):
        mini.generate(PROMPT, **kwargs)


@pytest.mark.parametrize("prompt", [["def f(", "class A"], ("def f(",), [1, 2, 3], None, 7])
def test_anything_but_one_prompt_is_refused(mini: HookedTransformer, prompt: Any) -> None:
    with pytest.raises(InputError, match=r"generate takes one prompt.*once per prompt"):
        mini.generate(prompt, 3)


def test_text_out_leaves_out_the_bos_it_added(mini: HookedTransformer) -> None:
    assert mini.tokenizer is not None and mini.cfg.default_prepend_bos
    ids = mini.generate(PROMPT, 8, return_text=False)
    assert isinstance(ids, torch.Tensor) and ids[0, 0].item() == mini.tokenizer.bos_id
    text = mini.generate(PROMPT, 8)
    assert isinstance(text, str)
    # byte-level BPE decodes by concatenation: the prompt, then the new tokens' text
    assert text == PROMPT + mini.tokenizer.hf.decode(ids[0, -8:].tolist())
    assert not text.startswith("<|endoftext|>")


def test_a_bos_the_user_wrote_is_kept(mini: HookedTransformer) -> None:
    prompt = "<|endoftext|>" + PROMPT
    ids = mini.to_tokens(prompt)
    assert ids[0, :2].tolist() == [mini.tokenizer.bos_id] * 2  # type: ignore[union-attr]
    text = mini.generate(prompt, 4)
    assert isinstance(text, str) and text.startswith(prompt)
    assert not text.startswith("<|endoftext|>" * 2)


def test_token_ids_in_text_out_decodes_every_token(mini: HookedTransformer) -> None:
    ids = mini.to_tokens(PROMPT)
    text = mini.generate(ids, 4, return_text=True)
    assert isinstance(text, str) and text.startswith("<|endoftext|>" + PROMPT)


def test_top_k_1_sampling_is_greedy_and_large_top_k_is_allowed(mini: HookedTransformer) -> None:
    ids = mini.to_tokens(PROMPT)
    greedy = mini.generate(ids, 6)
    assert isinstance(greedy, torch.Tensor)
    with torch.no_grad():  # independent greedy decoding: the argmax of a full forward each step
        seq = ids
        for _ in range(6):
            seq = torch.cat([seq, mini(seq)[:, -1].argmax(-1, keepdim=True)], 1)
    assert greedy.tolist() == seq.tolist()
    sampled = mini.generate(ids, 6, temperature=2.0, top_k=1, seed=0)
    assert isinstance(sampled, torch.Tensor) and sampled.tolist() == seq.tolist()
    many = mini.generate(ids, 2, temperature=1.0, top_k=10**6, seed=0)
    assert isinstance(many, torch.Tensor) and many.shape == (1, ids.shape[1] + 2)
