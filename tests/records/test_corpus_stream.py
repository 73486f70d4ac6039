"""Text corpora are tokenized by streaming through disk: the same rows as tokenizing in memory."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import lenscope.data.sample as tokmod
from lenscope.data.corpus import Document, iter_documents
from lenscope.data.sample import CHUNK_DOCS, stream_documents
from lenscope.records.corpus import CORPUS, SCRATCH, open_corpus, prepare_corpus
from tests.records.helpers import documents, hf_tokenizer, rows_of, tiny_model

SEP = 0  # <|endoftext|> in the helpers' word-level vocabulary


def in_memory(docs: list[Document], need: int) -> tuple[np.ndarray, list[int], list[str]]:
    """The rule, by brute force: every document in memory, sorted by the sha256 of its name,
    tokenized CHUNK_DOCS at a time until at least `need` tokens."""
    tok = hf_tokenizer()
    order = sorted(docs, key=lambda d: hashlib.sha256(d.name.encode()).digest())
    parts: list[list[int]] = []
    starts, names, total = [], [], 0
    for i in range(0, len(order), CHUNK_DOCS):
        chunk = order[i : i + CHUNK_DOCS]
        for d in chunk:
            ids = [*tok.encode(d.text, add_special_tokens=False).ids, SEP]
            starts.append(total)
            names.append(d.name)
            parts.append(ids)
            total += len(ids)
        if total >= need:
            break
    return np.concatenate([np.asarray(p) for p in parts]), starts, names


def encode(texts: list[str]) -> Iterator[list[int]]:
    return (e.ids for e in hf_tokenizer().encode_batch(texts, add_special_tokens=False))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Document]]:
    """300 files (about 5 chunks of documents) of 20 to 120 words, with a repeated name."""
    d = tmp_path_factory.mktemp("texts")
    rng = np.random.default_rng(1)
    for i, doc in enumerate(documents(n_docs=300, words=120, seed=3)):
        text = " ".join(doc.text.split()[: int(rng.integers(20, 121))])
        (d / f"d{i:03d}.txt").write_text(text, "utf-8")
    docs = list(iter_documents([str(d / "d000.txt"), str(d), str(d / "d000.txt")]))
    return d, docs


@pytest.mark.parametrize("bytes_per_token", [0.001, 4.0, 1e6])  # many passes, the guess, one
@pytest.mark.parametrize("need", [1, 2000, 9000, 10**7])  # one chunk .. several .. everything
def test_stream_equals_the_in_memory_rule(
    corpus: tuple[Path, list[Document]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    need: int,
    bytes_per_token: float,
) -> None:
    d, docs = corpus
    monkeypatch.setattr(tokmod, "BYTES_PER_TOKEN", bytes_per_token)
    given = [str(d / "d000.txt"), str(d), str(d / "d000.txt")]  # equal names: ties keep order
    s = stream_documents(lambda: iter_documents(given), encode, SEP, need, tmp_path / "s")
    want, starts, names = in_memory(docs, need)
    assert np.array_equal(np.asarray(s.tokens), want)
    assert s.doc_starts.tolist() == starts
    assert s.doc_names == names
    if bytes_per_token < 1 and need < 10**7:
        assert s.passes > 2  # the threshold had to grow


def test_harvest_rows_equal_those_of_the_in_memory_stream(
    corpus: tuple[Path, list[Document]], tmp_path: Path
) -> None:
    d, _ = corpus
    model = tiny_model()
    n_tokens, ctx = 4000, 16
    work = tmp_path / "work"
    got = prepare_corpus(work, model, [str(d)], n_tokens, ctx, log=lambda _: None)
    want, starts, names = in_memory(list(iter_documents([str(d)])), n_tokens // ctx * ctx)
    assert len(want) > 2 * 64 * ctx  # larger than a chunk of rows of a batch
    assert np.array_equal(np.asarray(got.rows), rows_of(want, n_tokens, ctx))
    assert got.doc_names == names and got.doc_starts.tolist() == starts
    assert not (work / SCRATCH).exists()
    reopened = open_corpus(work)
    assert reopened.sha256 == hashlib.sha256(np.asarray(got.rows).tobytes()).hexdigest()
    assert json.loads((work / CORPUS).read_text())["doc_names"] == names


def test_memory_stays_bounded_on_a_corpus_much_larger_than_the_harvest(tmp_path: Path) -> None:
    d = tmp_path / "big"
    d.mkdir()
    base = [doc.text for doc in documents(n_docs=20, words=400, seed=5)]
    text_bytes = n_words = 0
    for i in range(400):  # 400 files of 8000 words: about 13 MB of text
        text = " ".join([base[i % 20]] * 20)
        (d / f"b{i:03d}.txt").write_text(text, "utf-8")
        text_bytes += len(text)
        n_words += 8000
    model = tiny_model()
    for n_tokens, name in [(4096, "small"), (10**8, "all")]:
        tracemalloc.start()
        c = prepare_corpus(tmp_path / name, model, [str(d)], n_tokens, 64, log=lambda _: None)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        # holding the corpus would take text_bytes (str), and its token ids more besides
        assert peak < text_bytes / 4, (name, peak, text_bytes)
        assert c.rows.shape[0] == min(n_tokens, n_words + 400) // 64
