"""Tokenize documents into a token stream on disk, in bounded memory, in a fixed shuffled order.

The stream is the documents sorted by the sha256 of their names (so that a prefix samples the
whole corpus), each followed by the separator token, taken `CHUNK_DOCS` documents at a time until
at least `need` tokens are in. It is built without holding the corpus: documents are read one at
a time, and only those whose name hash lies below a threshold are tokenized and spooled to disk.
Documents below a threshold are a prefix of the sorted order, so once the prefix that the rule
takes lies below it, the stream is exact. The first threshold is where the corpus's size says
`need` tokens should lie; while it falls short it grows (one more reading pass each time).

Memory: about `SPOOL_BYTES` of text, plus a name and a few numbers per document below the
threshold (about the documents of `need` tokens); disk: their tokens, twice, until the caller
deletes `dir`.

`token_sample` is the harvest's entry: a token dataset (given, or the default corpus already
tokenized for the model) is read whole; text is sampled by this rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lenscope.data.corpus import Document, iter_documents
from lenscope.data.stream import (
    STDLIB,
    DocumentStream,
    TokenStream,
    cached_default,
    dataset_dir,
    separator,
)

if TYPE_CHECKING:
    from lenscope.model import HookedTransformer

CHUNK_DOCS = 64  # the stream ends on a whole chunk of this many documents
SPOOL_BYTES = 1 << 20  # text tokenized together (at most CHUNK_DOCS documents)
BYTES_PER_TOKEN = 4.0  # the first threshold's guess: a wrong guess costs passes, never results
MARGIN = 1.25
FULL = 1 << 64  # hash thresholds are on the scale of the first 8 bytes of the name's sha256

Encode = Callable[[list[str]], Iterable[list[int]]]  # token ids of each text, in order


@dataclass
class _Doc:
    key: bytes  # sha256 of the name: the sort key
    index: int  # order of iteration (breaks ties between equal names)
    name: str
    offset: int  # first token in the spool file
    length: int  # tokens, the separator included


@dataclass
class SampledStream:
    """The stream (memory-mapped int32), its documents' starts and names, and passes read."""

    tokens: npt.NDArray[np.int32]
    doc_starts: npt.NDArray[np.int64]
    doc_names: list[str]
    passes: int


def _key(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


class _Spool:
    """Tokenizes chosen documents a chunk at a time and appends their tokens to a file."""

    def __init__(self, path: Path, encode: Encode, sep: int) -> None:
        self.path, self.encode, self.sep = path, encode, sep
        self.docs: list[_Doc] = []
        self.tokens = 0
        self._pending: list[tuple[bytes, int, Document]] = []
        self._bytes = 0
        path.write_bytes(b"")

    def add(self, key: bytes, index: int, doc: Document) -> None:
        self._pending.append((key, index, doc))
        self._bytes += len(doc.text)
        if len(self._pending) >= CHUNK_DOCS or self._bytes >= SPOOL_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        ids = self.encode([d.text for _, _, d in self._pending])
        with self.path.open("ab") as f:
            for (key, index, doc), one in zip(self._pending, ids, strict=True):
                arr = np.asarray([*one, self.sep], dtype=np.int32)
                f.write(arr.tobytes())
                self.docs.append(_Doc(key, index, doc.name, self.tokens, len(arr)))
                self.tokens += len(arr)
        self._pending, self._bytes = [], 0


def _taken(lengths: npt.NDArray[np.int64], need: int, everything: bool) -> int | None:
    """How many sorted documents the rule takes, or None when the ones known do not decide it."""
    cum = np.cumsum(lengths)
    reached = int(np.searchsorted(cum, need))  # first document with the total >= need
    if reached < len(lengths):
        taken = (reached // CHUNK_DOCS + 1) * CHUNK_DOCS
        if taken <= len(lengths) or everything:
            return min(taken, len(lengths))
    return len(lengths) if everything else None


def stream_documents(
    documents: Callable[[], Iterable[Document]], encode: Encode, sep: int, need: int, dir: Path
) -> SampledStream:
    """Write the stream of `need` tokens (see the module) of the documents that `documents()`
    yields (afresh on every call) into `dir`; `encode` tokenizes a list of texts."""
    dir.mkdir(parents=True, exist_ok=True)
    total_bytes = sum(len(d.text.encode()) for d in documents())
    frac = MARGIN * need * BYTES_PER_TOKEN / max(total_bytes, 1)
    lo, hi = 0, FULL if frac >= 1 else max(1, int(frac * FULL))
    spool = _Spool(dir / "spool.bin", encode, sep)
    passes = 1
    while True:
        passes += 1
        for i, doc in enumerate(documents()):
            key = _key(doc.name)
            if lo <= int.from_bytes(key[:8], "big") < hi:
                spool.add(key, i, doc)
        spool.flush()
        spool.docs.sort(key=lambda d: (d.key, d.index))
        lengths = np.fromiter((d.length for d in spool.docs), dtype=np.int64, count=len(spool.docs))
        taken = _taken(lengths, need, hi == FULL)
        if taken is not None:
            break
        got = max(int(lengths.sum()), 1)
        lo, hi = hi, min(FULL, max(2 * hi, int(hi * MARGIN * need / got)))
    return _write(spool, spool.docs[:taken], dir / "stream.bin", passes)


def _write(spool: _Spool, docs: list[_Doc], path: Path, passes: int) -> SampledStream:
    src = np.memmap(spool.path, dtype=np.int32, mode="r") if spool.tokens else None
    starts = np.zeros(len(docs), dtype=np.int64)
    with path.open("wb") as f:
        at = 0
        for i, d in enumerate(docs):
            assert src is not None
            f.write(np.asarray(src[d.offset : d.offset + d.length]).tobytes())
            starts[i] = at
            at += d.length
    del src
    tokens: npt.NDArray[np.int32] = (
        np.memmap(path, dtype=np.int32, mode="r") if at else np.zeros(0, dtype=np.int32)
    )
    return SampledStream(tokens, starts, [d.name for d in docs], passes)


def token_sample(
    model: HookedTransformer,
    paths: Sequence[Path | str] | None,
    need: int,
    scratch: Path,
    log: Callable[[str], None] = print,
) -> DocumentStream:
    """At least `need` tokens for `model` with their documents: the train split of a token
    dataset (given as the one path, or the default corpus already tokenized for the model), else
    the text's documents sampled by the rule above into `scratch` (the caller deletes it)."""
    given = [str(p) for p in paths or []]
    ds = dataset_dir(given)
    if ds is not None:
        src = f"token dataset {given[0]} (train split)"
        return TokenStream(ds.train, ds.val, src, ds).train_documents()
    if not given:
        cached = cached_default(model)
        if cached is not None:
            src = f"the default corpus (token dataset {cached.path}, train split)"
            return TokenStream(cached.train, cached.val, src, cached).train_documents()
    sep = separator(model)
    assert model.tokenizer is not None
    hf = model.tokenizer.hf
    what = STDLIB if not given else ", ".join(given)
    log(f"tokenizing {what} with {model.cfg.name}'s tokenizer")

    def encode(texts: list[str]) -> Iterator[list[int]]:
        return (e.ids for e in hf.encode_batch(texts, add_special_tokens=False))

    s = stream_documents(lambda: iter_documents(given or None), encode, sep, need, scratch)
    return DocumentStream(s.tokens, s.doc_starts, s.doc_names, what)
