"""The rows a harvest reads: `n_rows` windows of `ctx` tokens spread evenly over a token stream.

The stream is a token array given by the caller, the model's cached token dataset of the default corpus (the standard library) when
its tokenizer is the model's, a token dataset directory given by the user, or documents (default
corpus or user files) tokenized now with the model's tokenizer, in a fixed order shuffled by
document name so that a prefix samples the whole corpus (streamed through disk in bounded memory:
see `lenscope.records.tokenize`). The rows are written once to the harvest's work directory
(`rows.npy` + `corpus.json`), chunk by chunk, so a resumed or multi-process harvest reads exactly
the same tokens and no step holds the corpus or all the rows in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lenscope.artifacts import lenscope_home
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
    from lenscope.data import TokenDataset

    if isinstance(paths, np.ndarray):
        if paths.ndim != 1 or not np.issubdtype(paths.dtype, np.integer):
            raise InputError("a token array corpus must be a 1-D array of integer token ids")
        return paths, np.zeros(0, dtype=np.int64), [], f"a token array of {len(paths):,} tokens"
    if paths and len(paths) == 1 and (Path(paths[0]) / "manifest.json").is_file():
        ds = TokenDataset.open(paths[0])
        return (*_dataset_stream(ds), f"token dataset {paths[0]} (train split)")
    if not paths:
        ds_cached = _cached_stdlib(model)
        if ds_cached is not None:
            what = f"the Python standard library (token dataset {ds_cached.path}, train split)"
            return (*_dataset_stream(ds_cached), what)
    return _tokenize(model, paths, need, scratch, log)


def _dataset_stream(ds: Any) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64], list[str]]:
    docs = ds.documents().to_pydict()
    keep = [i for i, s in enumerate(docs["split"]) if s == "train"]
    starts = np.asarray([docs["offset"][i] for i in keep], dtype=np.int64)
    names = [docs["name"][i] for i in keep]
    o = np.argsort(starts, kind="stable")
    return ds.train, starts[o], [names[i] for i in o]


def _cached_stdlib(model: HookedTransformer) -> Any:
    """The default corpus's token dataset when it exists and uses the model's tokenizer."""
    from lenscope.data import TokenDataset, tokenizer_hash
    from lenscope.errors import ArtifactError
    from lenscope.train.prepare import data_key

    if model.tokenizer is None:
        return None
    d = lenscope_home() / "data" / data_key((), model.cfg.d_vocab, None)
    if not (d / "manifest.json").is_file():
        return None
    try:
        ds = TokenDataset.open(d)
    except ArtifactError:
        return None
    if ds.manifest.data.get("tokenizer_sha256") != tokenizer_hash(model.tokenizer.hf):
        return None
    return ds


def _tokenize(
    model: HookedTransformer,
    paths: Sequence[str] | None,
    need: int,
    scratch: Path,
    log: Callable[[str], None],
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64], list[str], str]:
    from lenscope.data import iter_documents
    from lenscope.records.tokenize import stream_documents

    tok = model.tokenizer
    if tok is None:
        raise InputError(
            f"{model.cfg.name} has no tokenizer; give a token dataset directory as the corpus"
        )
    hf = tok.hf
    what = "the Python standard library" if not paths else ", ".join(paths)
    log(f"tokenizing {what} with {model.cfg.name}'s tokenizer")
    sep = tok.eos_id if tok.eos_id is not None else tok.pad_id

    def encode(texts: list[str]) -> Iterator[list[int]]:
        return (e.ids for e in hf.encode_batch(texts, add_special_tokens=False))

    given = list(paths) if paths else None
    s = stream_documents(lambda: iter_documents(given), encode, sep, need, scratch)
    return s.tokens, s.doc_starts, s.doc_names, what
