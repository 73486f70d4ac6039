"""Tests for lenscope.data.tokens: the token dataset artifact, compared with direct encoding."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from lenscope.data import TokenDataset
from lenscope.data.corpus import Document
from lenscope.data.tokenizer import EOT, tokenizer_hash
from lenscope.data.tokens import build_token_dataset
from lenscope.errors import ArtifactError, CorpusError, InputError

MakeDocs = Callable[[int], list[Document]]


def _expected_stream(tok: Tokenizer, docs: list[Document]) -> np.ndarray:
    ids: list[int] = []
    for d in docs:
        ids += [*tok.encode(d.text, add_special_tokens=False).ids, 0]
    return np.array(ids, dtype=np.int64)


def test_streams_equal_direct_encoding(
    tmp_path: Path, small_tokenizer: Tokenizer, make_docs: MakeDocs
) -> None:
    docs = make_docs(120)
    ds = build_token_dataset(
        docs, small_tokenizer, tmp_path / "ds", val_fraction=0.25, progress=False
    )
    index = ds.documents().to_pylist()
    names = {s: [r["name"] for r in index if r["split"] == s] for s in ("train", "val")}
    # disjoint, complete, and in corpus order within each split
    assert set(names["train"]).isdisjoint(names["val"])
    assert sorted(names["train"] + names["val"]) == sorted(d.name for d in docs)
    assert 10 <= len(names["val"]) <= 50
    by_name = {d.name: d for d in docs}
    for split, arr in (("train", ds.train), ("val", ds.val)):
        assert isinstance(arr, np.memmap) and arr.dtype == np.uint16
        expected = _expected_stream(small_tokenizer, [by_name[n] for n in names[split]])
        np.testing.assert_array_equal(np.asarray(arr, dtype=np.int64), expected)
    # the index offsets point at each document's tokens
    for r in index:
        arr = ds.split(r["split"])
        got = arr[r["offset"] : r["offset"] + r["tokens"]].tolist()
        assert got == small_tokenizer.encode(by_name[r["name"]].text).ids
        assert arr[r["offset"] + r["tokens"]] == 0


def test_manifest_records_counts(
    tmp_path: Path, small_tokenizer: Tokenizer, make_docs: MakeDocs
) -> None:
    docs = make_docs(40)
    ds = build_token_dataset(
        docs, small_tokenizer, tmp_path / "ds", progress=False, provenance={"corpus": "unit"}
    )
    data = json.loads((tmp_path / "ds" / "manifest.json").read_text())["data"]
    assert data["vocab_size"] == ds.vocab_size == small_tokenizer.get_vocab_size()
    assert data["dtype"] == "uint16" and data["eot_id"] == ds.eot_id == 0
    assert data["train_tokens"] == len(ds.train) and data["val_tokens"] == len(ds.val)
    assert data["train_documents"] + data["val_documents"] == 40
    assert data["tokenizer_sha256"] == tokenizer_hash(small_tokenizer)
    assert data["text_bytes"] == sum(len(d.text.encode()) for d in docs)
    assert ds.manifest.provenance["corpus"] == "unit"
    assert ds.manifest.provenance["split"]["seed"] == 0
    assert ds.manifest.provenance["split"]["val_fraction"] == 0.02
    assert tokenizer_hash(ds.tokenizer()) == tokenizer_hash(small_tokenizer)


def test_split_depends_only_on_name_and_seed(
    tmp_path: Path, small_tokenizer: Tokenizer, make_docs: MakeDocs
) -> None:
    docs = make_docs(200)

    def val_names(documents: list[Document], seed: int, dest: str) -> set[str]:
        ds = build_token_dataset(
            documents, small_tokenizer, tmp_path / dest, val_fraction=0.2, seed=seed, progress=False
        )
        return {r["name"] for r in ds.documents().to_pylist() if r["split"] == "val"}

    a = val_names(docs, 0, "a")
    assert a == val_names(list(reversed(docs)), 0, "b")
    assert a == val_names(docs[:100], 0, "c") | val_names(docs[100:], 0, "d")
    assert a != val_names(docs, 1, "e")
    assert 20 <= len(a) <= 60


def test_rebuild_is_byte_identical(
    tmp_path: Path, small_tokenizer: Tokenizer, make_docs: MakeDocs
) -> None:
    docs = make_docs(30)
    for dest in ("a", "b"):
        build_token_dataset(docs, small_tokenizer, tmp_path / dest, progress=False)
    for name in ("train.bin", "val.bin", "tokenizer.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_literal_separator_in_text_is_not_the_separator(
    tmp_path: Path, small_tokenizer: Tokenizer
) -> None:
    docs = [Document("a", f"x = '{EOT}'\n"), Document("b", "y = 2\n")]
    ds = build_token_dataset(
        docs, small_tokenizer, tmp_path / "ds", val_fraction=0.0, progress=False
    )
    assert int((np.asarray(ds.train) == 0).sum()) == 2
    assert ds.tokenizer().decode(ds.train.tolist()) == "".join(d.text for d in docs)


def test_progress_bar_runs(
    tmp_path: Path,
    small_tokenizer: Tokenizer,
    make_docs: MakeDocs,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ds = build_token_dataset(make_docs(10), small_tokenizer, tmp_path / "ds", progress=True)
    assert len(ds.train) > 0
    assert "tokenizing" in capsys.readouterr().err


def test_large_vocab_uses_uint32(tmp_path: Path) -> None:
    vocab = {EOT: 0, "[UNK]": 1} | {f"w{i}": i for i in range(2, 70_000)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    docs = [Document("a", "w2 w69999 w65536"), Document("b", "w40000 zzz")]
    ds = build_token_dataset(docs, tok, tmp_path / "ds", val_fraction=0.0, progress=False)
    assert ds.dtype == "uint32" and ds.train.dtype == np.uint32
    assert ds.train.tolist() == [2, 69999, 65536, 0, 40000, 1, 0]
    assert len(ds.val) == 0 and ds.val.dtype == np.uint32


def test_bad_build_arguments(
    tmp_path: Path, small_tokenizer: Tokenizer, make_docs: MakeDocs
) -> None:
    docs = make_docs(3)
    for frac in (-0.1, 1.0, 2):
        with pytest.raises(InputError, match=r"val_fraction must be in \[0, 1\)"):
            build_token_dataset(docs, small_tokenizer, tmp_path / "x", val_fraction=frac)
    with pytest.raises(InputError, match="seed"):
        build_token_dataset(docs, small_tokenizer, tmp_path / "x", seed=-1)
    with pytest.raises(InputError, match="Document"):
        build_token_dataset(["text"], small_tokenizer, tmp_path / "x", progress=False)  # type: ignore[list-item]
    with pytest.raises(CorpusError, match="empty"):
        build_token_dataset([], small_tokenizer, tmp_path / "x", progress=False)
    tok = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
    with pytest.raises(InputError, match="endoftext"):
        build_token_dataset(docs, tok, tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()
    assert list(tmp_path.iterdir()) == []  # no half-written temp directories left behind


def test_open_rejects_bad_artifacts(
    tmp_path: Path, small_tokenizer: Tokenizer, make_docs: MakeDocs
) -> None:
    with pytest.raises(ArtifactError, match="not a directory"):
        TokenDataset.open(tmp_path / "missing")
    ds = build_token_dataset(make_docs(20), small_tokenizer, tmp_path / "ds", progress=False)
    mf = tmp_path / "ds" / "manifest.json"
    good = mf.read_text()

    raw = json.loads(good)
    raw["kind"] = "sae"
    mf.write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="'sae' artifact, not a 'tokens'"):
        TokenDataset.open(ds.path)

    raw = json.loads(good)
    raw["data"]["dtype"] = "uint32"
    mf.write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="dtype"):
        TokenDataset.open(ds.path)

    raw = json.loads(good)
    del raw["data"]["train_tokens"]
    mf.write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="train_tokens"):
        TokenDataset.open(ds.path)

    mf.write_text(good)
    train = tmp_path / "ds" / "train.bin"
    train.write_bytes(train.read_bytes()[:-2])
    with pytest.raises(ArtifactError, match="truncated"):
        TokenDataset.open(ds.path)
    train.unlink()
    with pytest.raises(ArtifactError, match=r"no train\.bin"):
        TokenDataset.open(ds.path)


def test_split_accessor(tmp_path: Path, small_tokenizer: Tokenizer, make_docs: MakeDocs) -> None:
    ds = build_token_dataset(make_docs(5), small_tokenizer, tmp_path / "ds", progress=False)
    assert ds.split("train") is ds.train and ds.split("val") is ds.val
    with pytest.raises(InputError, match="unknown split"):
        ds.split("test")
