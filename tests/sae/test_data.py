"""SAE training text: user files become a cached on-disk token dataset in the model's tokenization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lenscope.data
from lenscope.data import iter_documents, split_of
from lenscope.model import load_model
from lenscope.sae.data import resolve_tokens
from tests.sae.helpers import tiny_lm_dir, write_text_corpus


def _expected(model: object, corpus: Path) -> tuple[np.ndarray, np.ndarray]:
    """Each document encoded on its own, followed by EOS, split by name; tail held out when the
    split by name leaves too little for validation (the rule `resolve_tokens` states)."""
    tok = model.tokenizer  # type: ignore[attr-defined]
    parts: dict[str, list[int]] = {"train": [], "val": []}
    for doc in iter_documents([corpus]):
        parts[split_of(doc.name, 0, 0.02)] += [*tok.encode(doc.text), tok.eos_id]
    train, val = np.array(parts["train"]), np.array(parts["val"], dtype=np.int64)
    if len(val) < len(train) // 50:
        cut = len(train) - max(len(train) // 20, 1)
        train, val = train[:cut], np.concatenate([train[cut:], val])
    return train, val


def test_text_files_tokenized_once_and_rebuilt_on_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LENSCOPE_HOME", str(tmp_path / "home"))
    corpus = write_text_corpus(tmp_path / "corpus")
    model = load_model(tiny_lm_dir(tmp_path / "model", corpus))
    want_train, want_val = _expected(model, corpus)

    first = resolve_tokens(model, [str(corpus)], progress=False)
    np.testing.assert_array_equal(np.asarray(first.train, dtype=np.int64), want_train)
    np.testing.assert_array_equal(np.asarray(first.val, dtype=np.int64), want_val)
    assert str(tmp_path / "home" / "data") in first.source

    def no_rebuild(*_a: object, **_k: object) -> None:
        raise AssertionError("an unchanged corpus must not be tokenized again")

    monkeypatch.setattr(lenscope.data, "build_token_dataset", no_rebuild)
    again = resolve_tokens(model, [str(corpus)], progress=False)
    assert again.source == first.source
    np.testing.assert_array_equal(np.asarray(again.train), np.asarray(first.train))

    monkeypatch.undo()
    monkeypatch.setenv("LENSCOPE_HOME", str(tmp_path / "home"))
    (corpus / "doc000.py").write_text("y = 1\n" * 50)
    changed = resolve_tokens(model, [str(corpus)], progress=False)
    assert changed.source != first.source
    np.testing.assert_array_equal(
        np.asarray(changed.train, dtype=np.int64), _expected(model, corpus)[0]
    )
