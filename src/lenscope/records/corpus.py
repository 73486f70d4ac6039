"""The rows a harvest reads: `n_rows` windows of `ctx` tokens spread evenly over a token stream.

The stream is a token array given by the caller, or `lenscope.data.token_sample`'s: a token
dataset (given by the user, or the default corpus already tokenized for the model), or documents
(default corpus or user files) tokenized now with the model's tokenizer, in a fixed order shuffled
by document name so that a prefix samples the whole corpus (streamed through disk in bounded
memory). The rows are written once to the harvest's work directory
(`rows.npy` + `corpus.json`), chunk by chunk, so a resumed or multi-process harvest reads exactly
the same tokens and no step holds the corpus or all the rows in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lenscope.data.sample import token_sample
from lenscope.errors import InputError
from lenscope.model import HookedTransformer

ROWS = "rows.npy"
STARTS = "starts.npy"  # each row's offset in the stream, then each document's
CORPUS = "corpus.json"  # written last: the rows are complete when it exists
SCRATCH = "tokenize"  # the tokenized stream of text corpora, deleted once the rows are written
ROW_CHUNK = 1024  # rows gathered at a time


@dataclass
class Corpus:
    """Rows of tokens [n_rows, ctx], where they came from, and the documents they lie in."""

    rows: npt.NDArray[Any]
    starts: npt.NDArray[np.int64]  # offset of each row in the source stream
    doc_starts: npt.NDArray[np.int64]
    doc_names: list[str]
    description: str
    sha256: str

    @property
    def ctx(self) -> int:
        return int(self.rows.shape[1])

    def doc_of(self, stream_offsets: npt.NDArray[np.int64]) -> list[str]:
        if not self.doc_names:
            return [""] * len(stream_offsets)
        i = np.searchsorted(self.doc_starts, stream_offsets, side="right") - 1
        return [self.doc_names[j] if j >= 0 else "" for j in i.tolist()]

    def stream_offset(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        out: npt.NDArray[np.int64] = self.starts[positions // self.ctx] + positions % self.ctx
        return out


def _starts(
    work: Path, meta: dict[str, Any]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(row starts, document starts) in the stream."""
    if "starts" in meta:  # work directories of earlier versions
        return (
            np.asarray(meta["starts"], dtype=np.int64),
            np.asarray(meta["doc_starts"], dtype=np.int64),
        )
    both = np.load(work / STARTS)
    return both[: meta["n_rows"]], both[meta["n_rows"] :]


def open_corpus(work: Path) -> Corpus:
    meta = json.loads((work / CORPUS).read_text("utf-8"))
    rows = np.load(work / ROWS, mmap_mode="r")
    starts, doc_starts = _starts(work, meta)
    return Corpus(
        rows,
        starts,
        doc_starts,
        list(meta["doc_names"]),
        str(meta["description"]),
        str(meta["sha256"]),
    )


def prepare_corpus(
    work: Path,
    model: HookedTransformer,
    paths: Sequence[str] | npt.NDArray[Any] | None,
    n_tokens: int,
    ctx: int,
    log: Callable[[str], None] = print,
) -> Corpus:
    """Write the harvest's rows into `work` (once) and open them."""
    if (work / CORPUS).is_file() and (work / ROWS).is_file():
        return open_corpus(work)
    want = max(n_tokens // ctx, 1)
    work.mkdir(parents=True, exist_ok=True)
    try:
        stream, doc_starts, names, what = _stream(model, paths, want * ctx, work / SCRATCH, log)
        n_rows = min(want, len(stream) // ctx)
        if n_rows < 1:
            raise InputError(f"the corpus has {len(stream)} tokens, fewer than one row of {ctx}")
        if n_rows == 1:
            starts = np.zeros(1, dtype=np.int64)
        else:
            starts = (np.arange(n_rows, dtype=np.int64) * (len(stream) - ctx)) // (n_rows - 1)
        sha = _write_rows(work, stream, starts, ctx, model)
    finally:
        shutil.rmtree(work / SCRATCH, ignore_errors=True)
    tmp = work / f".{STARTS}.{os.getpid()}.npy"
    np.save(tmp, np.concatenate([starts, np.asarray(doc_starts, dtype=np.int64)]))
    os.replace(tmp, work / STARTS)
    meta = {"description": what, "sha256": sha, "n_rows": len(starts), "doc_names": names}
    tmpj = work / f".{CORPUS}.{os.getpid()}"
    tmpj.write_text(json.dumps(meta), "utf-8")
    os.replace(tmpj, work / CORPUS)
    return open_corpus(work)


def _write_rows(
    work: Path,
    stream: npt.NDArray[Any],
    starts: npt.NDArray[np.int64],
    ctx: int,
    model: HookedTransformer,
) -> str:
    """Gather the rows into `work/rows.npy` a chunk at a time; return their sha256."""
    tmp = work / f".{ROWS}.{os.getpid()}.npy"
    rows = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int32, shape=(len(starts), ctx))
    sha = hashlib.sha256()
    try:
        for i in range(0, len(starts), ROW_CHUNK):
            s = starts[i : i + ROW_CHUNK]
            chunk = np.asarray(stream[s[:, None] + np.arange(ctx)], dtype=np.int32)
            top = int(chunk.max())
            if top >= model.cfg.d_vocab:
                raise InputError(
                    f"the corpus holds token id {top} but {model.cfg.name} has "
                    f"{model.cfg.d_vocab} tokens; it was tokenized for another model"
                )
            rows[i : i + len(s)] = chunk
            sha.update(chunk.tobytes())
        rows.flush()
        del rows
        os.replace(tmp, work / ROWS)
    finally:
        tmp.unlink(missing_ok=True)
    return sha.hexdigest()


def _stream(
    model: HookedTransformer,
    paths: Sequence[str] | npt.NDArray[Any] | None,
    need: int,
    scratch: Path,
    log: Callable[[str], None],
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64], list[str], str]:
    if isinstance(paths, np.ndarray):
        if paths.ndim != 1 or not np.issubdtype(paths.dtype, np.integer):
            raise InputError("a token array corpus must be a 1-D array of integer token ids")
        return paths, np.zeros(0, dtype=np.int64), [], f"a token array of {len(paths):,} tokens"
    s = token_sample(model, paths, need, scratch, log)
    return s.tokens, s.doc_starts, s.doc_names, s.source
