"""`token_stream`: a model's train/val tokens from a token dataset, text files or the default
corpus, in the model's own tokenization, cached under LENSCOPE_HOME/data.

Expected streams are built independently: each document encoded on its own with the model's
tokenizer, followed by its end-of-text token, split by `split_of(name, 0, 0.02)`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lenscope.data.corpus as corpus_mod
import lenscope.data.stream as stream_mod
from lenscope import HookedTransformer, ModelConfig
from lenscope.artifacts import Manifest, lenscope_home
from lenscope.data import TokenDataset, token_sample, token_stream
from lenscope.data.corpus import Document, iter_documents
from lenscope.data.prepare import data_key
from lenscope.data.tokenizer import train_bpe
from lenscope.data.tokens import build_token_dataset, split_of
from lenscope.errors import InputError
from lenscope.model import load_model
from lenscope.model.tokenizer import Tokenizer
from tests.sae.helpers import tiny_lm_dir, write_text_corpus

TEXT = (
    "The keys to the cabinet are on the table. The key to the cabinets is on the table. "
    "for i in range(10): print(i, i * i)\n"
)
DOCS = [Document(f"doc{i}.py", f"{TEXT} # {i} " * (1 + i % 3)) for i in range(60)]
VAL_FRACTION = 0.02


def _model(tok: Tokenizer) -> HookedTransformer:
    cfg = ModelConfig(n_layers=1, d_model=16, n_heads=2, d_vocab=tok.vocab_size, n_ctx=16)
    return HookedTransformer(cfg, tok)


def _by_name(tok: Tokenizer, docs: list[Document]) -> dict[str, list[int]]:
    """Each document encoded alone + EOS, appended to the split its name goes to."""
    assert tok.eos_id is not None
    parts: dict[str, list[int]] = {"train": [], "val": []}
    for d in docs:
        parts[split_of(d.name, 0, VAL_FRACTION)] += [*tok.encode(d.text), tok.eos_id]
    return parts


def _held_out(parts: dict[str, list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """The text-file rule: when val holds less than a fiftieth of train, the last twentieth of
    train is held out too (before val)."""
    train, val = np.array(parts["train"]), np.array(parts["val"], dtype=np.int64)
    if len(val) < len(train) // 50:
        cut = len(train) - max(len(train) // 20, 1)
        train, val = train[:cut], np.concatenate([train[cut:], val])
    return train, val


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LENSCOPE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def stdlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small stand-in for the standard library: DOCS as .py files."""
    root = tmp_path / "stdlib"
    root.mkdir()
    for d in DOCS:
        (root / d.name).write_text(d.text, "utf-8")
    monkeypatch.setattr(corpus_mod, "default_corpus_root", lambda: root)
    return root


def _no_rebuild(*_a: object, **_k: object) -> None:
    raise AssertionError("a cached token dataset must not be tokenized again")


def test_text_files_tokenized_once_and_rebuilt_on_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = write_text_corpus(tmp_path / "corpus")
    model = load_model(tiny_lm_dir(tmp_path / "model", corpus))
    docs = list(iter_documents([corpus]))
    want_train, want_val = _held_out(_by_name(model.tokenizer, docs))  # type: ignore[arg-type]

    first = token_stream(model, [str(corpus)], progress=False, log=lambda _: None)
    np.testing.assert_array_equal(np.asarray(first.train, dtype=np.int64), want_train)
    np.testing.assert_array_equal(np.asarray(first.val, dtype=np.int64), want_val)
    assert str(tmp_path / "home" / "data") in first.source

    monkeypatch.setattr(stream_mod, "build_token_dataset", _no_rebuild)
    again = token_stream(model, [corpus], progress=False, log=lambda _: None)
    assert again.source == first.source
    np.testing.assert_array_equal(np.asarray(again.train), np.asarray(first.train))

    monkeypatch.undo()
    monkeypatch.setenv("LENSCOPE_HOME", str(tmp_path / "home"))
    (corpus / "doc000.py").write_text("y = 1\n" * 50)
    changed = token_stream(model, [str(corpus)], progress=False, log=lambda _: None)
    assert changed.source != first.source
    want = _held_out(_by_name(model.tokenizer, list(iter_documents([corpus]))))  # type: ignore[arg-type]
    np.testing.assert_array_equal(np.asarray(changed.train, dtype=np.int64), want[0])


def test_user_text_is_encoded_with_the_models_tokenizer(tmp_path: Path) -> None:
    d = tmp_path / "texts"
    d.mkdir()
    for doc in DOCS[:12]:
        (d / doc.name.replace(".py", ".txt")).write_text(doc.text)
    tok = Tokenizer(train_bpe([TEXT], 300))
    got = token_stream(_model(tok), [str(d)], progress=False, log=lambda _: None)
    names = sorted(p.name for p in d.iterdir())
    docs = [Document(f"{d.as_posix()}/{n}", (d / n).read_text()) for n in names]
    train, val = _held_out(_by_name(tok, docs))
    assert got.train.tolist() == train.tolist() and got.val.tolist() == val.tolist()
    limited = token_stream(_model(tok), [str(d)], limit_bytes=1, progress=False, log=lambda _: None)
    assert limited.source != got.source  # a limit is another dataset: the first document only
    assert len(limited.train) + len(limited.val) == len(tok.encode(docs[0].text)) + 1
    bare = HookedTransformer(ModelConfig(n_layers=1, d_model=16, n_heads=2, d_vocab=50, n_ctx=8))
    with pytest.raises(InputError, match="no tokenizer"):
        token_stream(bare, [str(d)])


def test_default_corpus_is_a_dataset_built_with_the_same_tokenizer(stdlib: Path) -> None:
    """lenscope's own models: the recipe's stdlib dataset is read as it is (nothing re-encoded)."""
    tok = train_bpe([d.text for d in DOCS], 320)
    ds = build_token_dataset(
        DOCS,
        tok,
        lenscope_home() / "data" / data_key((), tok.get_vocab_size(), None),
        val_fraction=0.2,
        progress=False,
    )
    m = _model(Tokenizer(tok))
    got = token_stream(m, log=lambda _: None)
    assert got.dataset is not None and got.dataset.path == ds.path
    assert np.array_equal(got.train, ds.train) and np.array_equal(got.val, ds.val)
    sample = token_sample(m, None, 10, lenscope_home() / "scratch", log=lambda _: None)
    assert np.array_equal(sample.tokens, ds.train)  # a harvest reads its train split whole
    offsets = ds.documents().to_pydict()
    want = sorted(
        (o, n)
        for o, n, s in zip(offsets["offset"], offsets["name"], offsets["split"], strict=True)
        if s == "train"
    )
    assert sample.doc_starts.tolist() == [o for o, _ in want]
    assert sample.doc_names == [n for _, n in want]


def test_default_corpus_prefers_the_models_own_training_data(stdlib: Path, tmp_path: Path) -> None:
    tok = train_bpe([d.text for d in DOCS], 320)
    mine = build_token_dataset(DOCS[:30], tok, tmp_path / "mine", progress=False)
    build_token_dataset(
        DOCS,
        tok,
        lenscope_home() / "data" / data_key((), tok.get_vocab_size(), None),
        progress=False,
    )
    m = _model(Tokenizer(tok))
    m.manifest = Manifest("model", 1, provenance={"data": {"path": str(mine.path)}})  # type: ignore[attr-defined]
    got = token_stream(m, log=lambda _: None)
    assert got.dataset is not None and got.dataset.path == mine.path
    assert np.array_equal(got.train, mine.train)


def test_default_corpus_for_another_tokenizer_is_encoded_once_with_it(
    stdlib: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tok = train_bpe([d.text for d in DOCS], 320)
    build_token_dataset(  # the recipe's dataset, in another tokenization: not used
        DOCS, tok, lenscope_home() / "data" / data_key((), 280, None), progress=False
    )
    other = Tokenizer(train_bpe([TEXT], 280))
    logs: list[str] = []
    got = token_stream(_model(other), progress=False, log=logs.append)
    assert any("tokenizing the Python standard library" in s for s in logs)
    docs = list(iter_documents(None))
    assert [d.name for d in docs] == sorted(d.name for d in DOCS)
    want = _by_name(other, docs)
    assert got.train.tolist() == want["train"] and got.val.tolist() == want["val"]
    monkeypatch.setattr(stream_mod, "build_token_dataset", _no_rebuild)
    again = token_stream(_model(other), log=logs.append)
    assert again.source == got.source and np.array_equal(again.train, got.train)


def test_a_token_dataset_directory_is_read_as_it_is(tmp_path: Path) -> None:
    tok = train_bpe([d.text for d in DOCS], 320)
    ds = build_token_dataset(DOCS, tok, tmp_path / "ds", val_fraction=0.2, progress=False)
    small = HookedTransformer(ModelConfig(n_layers=1, d_model=16, n_heads=2, d_vocab=400, n_ctx=8))
    got = token_stream(small, [ds.path])  # no tokenizer needed
    assert np.array_equal(got.train, ds.train) and np.array_equal(got.val, ds.val)
    tiny = HookedTransformer(ModelConfig(n_layers=1, d_model=16, n_heads=2, d_vocab=100, n_ctx=8))
    with pytest.raises(InputError, match=r"320-token vocabulary but .* reads 100"):
        token_stream(tiny, [str(ds.path)])


def test_an_opened_dataset_is_reused_by_every_instrument(stdlib: Path) -> None:
    """The cached stdlib stream of a foreign tokenizer serves a harvest too (train split)."""
    other = Tokenizer(train_bpe([TEXT], 280))
    m = _model(other)
    full = token_stream(m, progress=False, log=lambda _: None)
    sample = token_sample(m, None, 10, lenscope_home() / "scratch", log=lambda _: None)
    assert isinstance(full.dataset, TokenDataset)
    assert np.array_equal(sample.tokens, full.train)
    assert not (lenscope_home() / "scratch").exists()  # nothing tokenized again


def test_text_files_stream_in_bounded_memory(tmp_path: Path) -> None:
    """About 12 MB of text (txt files and a jsonl) become a token dataset without holding the
    corpus: Python's peak allocation stays far below the text's size."""
    import json
    import tracemalloc

    from tests.records.helpers import documents, tiny_model

    d = tmp_path / "big"
    d.mkdir()
    base = [doc.text for doc in documents(n_docs=20, words=400, seed=5)]
    text_bytes = n_words = 0
    with (d / "lines.jsonl").open("w") as f:
        for i in range(400):
            text = " ".join([base[i % 20]] * 10)
            f.write(json.dumps({"text": text}) + "\n")
            text_bytes, n_words = text_bytes + len(text), n_words + 4000
    for i in range(400):
        text = " ".join([base[(i + 7) % 20]] * 10)
        (d / f"b{i:03d}.txt").write_text(text, "utf-8")
        text_bytes, n_words = text_bytes + len(text), n_words + 4000
    model = tiny_model()
    warm = tmp_path / "warm"  # the first call imports modules (pyarrow, rich): not the corpus
    warm.mkdir()
    (warm / "a.txt").write_text(base[0])
    token_stream(model, [str(warm)], progress=False, log=lambda _: None)
    tracemalloc.start()
    got = token_stream(model, [str(d)], progress=False, log=lambda _: None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # holding the text would take text_bytes, its ids as Python lists some 30 bytes a token
    assert peak < text_bytes / 3, (peak, text_bytes)
    assert len(got.train) + len(got.val) == n_words + 800  # every word, one separator per document
    assert isinstance(got.train, np.memmap)
