"""Tuned-lens data is in the model's own tokenization: dataset as is, re-encoded, or user files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lenscope.train.prepare as prepare
from lenscope import HookedTransformer, ModelConfig
from lenscope.data import Document, TokenDataset, build_token_dataset, split_of, train_bpe
from lenscope.errors import InputError
from lenscope.lens import lens_corpus
from lenscope.lens.corpus import VAL_FRACTION
from lenscope.model.tokenizer import Tokenizer
from tests.lens.fixtures import TEXT

DOCS = [Document(f"doc{i}.py", f"{TEXT} # {i} " * (1 + i % 3)) for i in range(60)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> TokenDataset:
    tok = train_bpe([d.text for d in DOCS], 320)
    d = tmp_path_factory.mktemp("ds") / "tokens"
    return build_token_dataset(DOCS, tok, d, val_fraction=0.2, progress=False)


def _model(tok: Tokenizer) -> HookedTransformer:
    cfg = ModelConfig(n_layers=1, d_model=16, n_heads=2, d_vocab=tok.vocab_size, n_ctx=16)
    return HookedTransformer(cfg, tok)


def test_same_tokenizer_uses_the_dataset_streams(
    dataset: TokenDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepare, "prepare_data", lambda *a, **k: dataset)
    m = _model(Tokenizer.from_file(dataset.path))
    got = lens_corpus(m, log=lambda s: None)
    assert np.array_equal(got.train, dataset.train) and np.array_equal(got.val, dataset.val)


def test_other_tokenizer_re_encodes_each_document_keeping_the_split(
    dataset: TokenDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepare, "prepare_data", lambda *a, **k: dataset)
    other = Tokenizer(train_bpe([TEXT], 280))
    assert other.eos_id is not None
    logs: list[str] = []
    got = lens_corpus(_model(other), log=logs.append)
    assert any("re-encoding" in s for s in logs)
    table = dataset.documents()
    want: dict[str, list[int]] = {"train": [], "val": []}
    for name, split in zip(
        table.column("name").to_pylist(), table.column("split").to_pylist(), strict=True
    ):
        text = next(d.text for d in DOCS if d.name == name)
        want[split] += [*other.encode(text), other.eos_id]
    assert got.train.tolist() == want["train"] and got.val.tolist() == want["val"]


def test_user_corpus_is_encoded_with_the_models_tokenizer(tmp_path: Path) -> None:
    for d in DOCS[:12]:
        (tmp_path / d.name.replace(".py", ".txt")).write_text(d.text)
    tok = Tokenizer(train_bpe([TEXT], 300))
    got = lens_corpus(_model(tok), [str(tmp_path)])
    names = sorted(p.name for p in tmp_path.iterdir())
    splits = [split_of(f"{tmp_path.as_posix()}/{n}", 0, VAL_FRACTION) for n in names]
    texts = [(tmp_path / n).read_text() for n in names]
    stream = {
        s: [
            t
            for sp, x in zip(splits, texts, strict=True)
            if sp == s
            for t in [*tok.encode(x), tok.eos_id]
        ]
        for s in ("train", "val")
    }
    if stream["val"]:
        assert got.train.tolist() == stream["train"] and got.val.tolist() == stream["val"]
    else:  # every file went to train: the last tenth of the stream is held out
        cut = int(len(stream["train"]) * 0.9)
        assert got.train.tolist() == stream["train"][:cut]
        assert got.val.tolist() == stream["train"][cut:]
    bare = HookedTransformer(ModelConfig(n_layers=1, d_model=16, n_heads=2, d_vocab=50, n_ctx=8))
    with pytest.raises(InputError, match="no tokenizer"):
        lens_corpus(bare, [str(tmp_path)])
