"""Token datasets: a corpus tokenized into flat, memory-mapped train/val token streams.

An artifact of kind "tokens" is a directory holding
  train.bin, val.bin     every document's ids followed by `<|endoftext|>`, concatenated
                         (uint16 when the vocabulary has at most 65536 tokens, else uint32)
  documents.parquet      one row per document: name, split, offset (in its split), tokens (w/o EOT)
  tokenizer.json         the tokenizer that produced the ids
  manifest.json          vocab size, dtype, eot id, token and document counts per split, tokenizer
                         hash, split seed and fraction, text bytes
A document goes to val when the SHA-256 of "{seed}:{name}" read as a fraction in [0, 1) falls
below `val_fraction`, so the split depends only on the name and seed, never on corpus order.
Text that spells `<|endoftext|>` is encoded as ordinary bytes: the separator id appears in the
streams only between documents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from lenscope.artifacts import Manifest, read_manifest, writing_artifact
from lenscope.data.corpus import Document
from lenscope.data.tokenizer import eot_id, load_tokenizer, save_tokenizer, tokenizer_hash
from lenscope.errors import ArtifactError, CorpusError, InputError

KIND = "tokens"
SCHEMA_VERSION = 1
SPLITS = ("train", "val")
DOCUMENTS_FILE = "documents.parquet"
_BATCH_DOCS = 256
_BATCH_BYTES = 1 << 20  # text encoded together: memory is about this, whatever the corpus

TokenArray = npt.NDArray[np.unsignedinteger[Any]]


def split_of(name: str, seed: int, val_fraction: float) -> str:
    """The split ("train" or "val") that the document called `name` goes to."""
    h = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2**64
    return "val" if u < val_fraction else "train"


def token_dtype(vocab_size: int) -> np.dtype[Any]:
    """uint16 for vocabularies of at most 65536 tokens, else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


@dataclass
class TokenDataset:
    """An opened token dataset: `.train` / `.val` are read-only memory maps of token ids."""

    path: Path
    manifest: Manifest
    train: TokenArray
    val: TokenArray
    vocab_size: int
    eot_id: int
    dtype: str

    @classmethod
    def open(cls, path: Path | str) -> TokenDataset:
        """Open and validate a token dataset directory; `ArtifactError` if it is not one."""
        p = Path(path)
        m = read_manifest(p, KIND, SCHEMA_VERSION)
        d = m.data
        vocab = _int_field(d, "vocab_size", p)
        eot = _int_field(d, "eot_id", p)
        dtype = d.get("dtype")
        if vocab <= 0 or not 0 <= eot < vocab:
            raise ArtifactError(f"{p}: vocab_size {vocab} / eot_id {eot} are inconsistent")
        if dtype != token_dtype(vocab).name:
            raise ArtifactError(
                f"{p}: dtype {dtype!r} does not match vocab_size {vocab}; rebuild the dataset"
            )
        arrays = {s: _open_split(p, s, _int_field(d, f"{s}_tokens", p), dtype) for s in SPLITS}
        return cls(p, m, arrays["train"], arrays["val"], vocab, eot, dtype)

    def split(self, name: str) -> TokenArray:
        """The token stream of split `name` ("train" or "val")."""
        if name not in SPLITS:
            raise InputError(f"unknown split {name!r}; use 'train' or 'val'")
        return self.train if name == "train" else self.val

    def tokenizer(self) -> Tokenizer:
        """The tokenizer stored with the dataset."""
        return load_tokenizer(self.path)

    def documents(self) -> Any:
        """A pyarrow Table: name, split, offset (token index in its split), tokens (without EOT)."""
        import pyarrow.parquet as pq

        f = self.path / DOCUMENTS_FILE
        if not f.is_file():
            raise ArtifactError(f"{self.path} has no {DOCUMENTS_FILE}; rebuild the dataset")
        return pq.read_table(f)


def _int_field(d: Mapping[str, Any], key: str, p: Path) -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ArtifactError(f"{p}: manifest data has no integer {key!r}; rebuild the dataset")
    return v


def _open_split(p: Path, split: str, n: int, dtype: str) -> TokenArray:
    f = p / f"{split}.bin"
    if not f.is_file():
        raise ArtifactError(f"{p} has no {f.name}; the dataset is incomplete, rebuild it")
    dt = np.dtype(dtype)
    size = f.stat().st_size
    if size != n * dt.itemsize:
        raise ArtifactError(
            f"{f} holds {size} bytes but the manifest says {n} {dtype} tokens "
            f"({n * dt.itemsize} bytes); the file is truncated or corrupt, rebuild the dataset"
        )
    if n == 0:
        return np.zeros(0, dtype=dt)
    return np.memmap(f, dtype=dt, mode="r", shape=(n,))


def build_token_dataset(
    docs: Iterable[Document],
    tokenizer: Tokenizer,
    dest: Path | str,
    *,
    val_fraction: float = 0.02,
    seed: int = 0,
    progress: bool = True,
    provenance: Mapping[str, Any] | None = None,
    sep_id: int | None = None,
) -> TokenDataset:
    """Tokenize `docs` into a token dataset artifact at `dest` (replacing it) and open it.

    Documents are encoded in batches; each is followed by `sep_id` (default: the `<|endoftext|>`
    id). `provenance` (e.g. where the corpus came from) is recorded in the manifest.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, int | float):
        raise InputError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    eot = eot_id(tokenizer) if sep_id is None else sep_id
    dtype = token_dtype(vocab)
    encoder = Tokenizer.from_str(tokenizer.to_str())
    encoder.encode_special_tokens = True  # corpus text never produces the separator id
    manifest = Manifest(
        kind=KIND,
        schema_version=SCHEMA_VERSION,
        provenance={
            **(provenance or {}),
            "split": {
                "rule": "val when sha256('{seed}:{name}')[:8] / 2**64 < val_fraction",
                "seed": seed,
                "val_fraction": val_fraction,
            },
        },
    )
    with writing_artifact(dest, manifest) as tmp:
        writer = _SplitWriter(tmp, dtype, eot, seed, val_fraction)
        try:
            _encode_all(docs, encoder, writer, progress)
        finally:
            writer.close()
        if sum(writer.documents.values()) == 0:
            raise CorpusError("no documents to tokenize; the corpus is empty")
        if writer.tokens["train"] == 0:
            raise CorpusError(
                "no document landed in the train split; give more documents or lower val_fraction"
            )
        writer.write_index(tmp / DOCUMENTS_FILE)
        save_tokenizer(tokenizer, tmp)
        manifest.data = {
            "vocab_size": vocab,
            "dtype": dtype.name,
            "eot_id": eot,
            "tokenizer_sha256": tokenizer_hash(tokenizer),
            "text_bytes": writer.text_bytes,
            **{f"{s}_tokens": writer.tokens[s] for s in SPLITS},
            **{f"{s}_documents": writer.documents[s] for s in SPLITS},
        }
    return TokenDataset.open(dest)


class _SplitWriter:
    """Appends encoded documents to train.bin / val.bin and remembers the document index."""

    def __init__(self, d: Path, dtype: np.dtype[Any], eot: int, seed: int, frac: float) -> None:
        self.dtype, self.eot, self.seed, self.frac = dtype, eot, seed, frac
        self.files: dict[str, BinaryIO] = {s: (d / f"{s}.bin").open("wb") for s in SPLITS}
        self.tokens = dict.fromkeys(SPLITS, 0)
        self.documents = dict.fromkeys(SPLITS, 0)
        self.text_bytes = 0
        self.index: dict[str, list[Any]] = {"name": [], "split": [], "offset": [], "tokens": []}

    def write(self, docs: list[Document], ids: Iterable[list[int]]) -> int:
        parts: dict[str, list[npt.NDArray[Any]]] = {s: [] for s in SPLITS}
        sep = np.array([self.eot], dtype=self.dtype)
        written = 0
        for doc, doc_ids in zip(docs, ids, strict=True):
            s = split_of(doc.name, self.seed, self.frac)
            arr = np.array(doc_ids, dtype=self.dtype)
            self.index["name"].append(doc.name)
            self.index["split"].append(s)
            self.index["offset"].append(self.tokens[s])
            self.index["tokens"].append(len(arr))
            parts[s] += [arr, sep]
            self.tokens[s] += len(arr) + 1
            self.documents[s] += 1
            self.text_bytes += len(doc.text.encode("utf-8"))
            written += len(arr) + 1
        for s in SPLITS:
            if parts[s]:
                self.files[s].write(np.concatenate(parts[s]).tobytes())
        return written

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()

    def write_index(self, f: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "name": pa.array(self.index["name"], pa.string()),
                "split": pa.array(self.index["split"], pa.string()),
                "offset": pa.array(self.index["offset"], pa.int64()),
                "tokens": pa.array(self.index["tokens"], pa.int64()),
            }
        )
        pq.write_table(table, f)


def _encode_all(
    docs: Iterable[Document], encoder: Tokenizer, writer: _SplitWriter, progress: bool
) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    total = len(docs) if isinstance(docs, Sized) else None
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} docs  {task.fields[tokens]:,} tokens"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        task = bar.add_task("tokenizing", total=total, tokens=0)
        n_tokens = 0
        batch: list[Document] = []
        size = 0

        def flush() -> None:
            nonlocal n_tokens, size
            encodings = encoder.encode_batch([d.text for d in batch], add_special_tokens=False)
            n_tokens += writer.write(batch, (e.ids for e in encodings))  # one list at a time
            bar.update(task, advance=len(batch), tokens=n_tokens)
            batch.clear()
            size = 0

        for doc in docs:
            if not isinstance(doc, Document):
                raise InputError(f"docs must yield Document(name, text) objects, got {doc!r:.80}")
            batch.append(doc)
            size += len(doc.text)
            if len(batch) >= _BATCH_DOCS or size >= _BATCH_BYTES:
                flush()
        if batch:
            flush()
