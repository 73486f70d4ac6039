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
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lenscope.data import Document

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
class TokenStream:
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
) -> TokenStream:
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


def _write(spool: _Spool, docs: list[_Doc], path: Path, passes: int) -> TokenStream:
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
    return TokenStream(tokens, starts, [d.name for d in docs], passes)
