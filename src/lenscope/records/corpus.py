"""The rows a harvest reads: `n_rows` windows of `ctx` tokens spread evenly over a token stream.

The stream is a token array given by the caller, the model's cached token dataset of the default corpus (the standard library) when
its tokenizer is the model's, a token dataset directory given by the user, or documents (default
corpus or user files) tokenized now with the model's tokenizer, in a fixed order shuffled by
document name so that a prefix samples the whole corpus. The rows are written once to the
harvest's work directory (`rows.npy` + `corpus.json`), so a resumed or multi-process harvest
reads exactly the same tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lenscope.artifacts import lenscope_home
from lenscope.errors import InputError
from lenscope.model import HookedTransformer

ROWS = "rows.npy"
CORPUS = "corpus.json"


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


def open_corpus(work: Path) -> Corpus:
    meta = json.loads((work / CORPUS).read_text("utf-8"))
    rows = np.load(work / ROWS, mmap_mode="r")
    return Corpus(
        rows,
        np.asarray(meta["starts"], dtype=np.int64),
        np.asarray(meta["doc_starts"], dtype=np.int64),
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
    stream, doc_starts, names, what = _stream(model, paths, want * ctx, log)
    n_rows = min(want, len(stream) // ctx)
    if n_rows < 1:
        raise InputError(f"the corpus has {len(stream)} tokens, fewer than one row of {ctx}")
    if n_rows == 1:
        starts = np.zeros(1, dtype=np.int64)
    else:
        starts = (np.arange(n_rows, dtype=np.int64) * (len(stream) - ctx)) // (n_rows - 1)
    rows = np.empty((n_rows, ctx), dtype=np.int32)
    for i in range(0, n_rows, 4096):
        s = starts[i : i + 4096]
        rows[i : i + len(s)] = np.asarray(stream)[s[:, None] + np.arange(ctx)]
    top = int(rows.max())
    if top >= model.cfg.d_vocab:
        raise InputError(
            f"the corpus holds token id {top} but {model.cfg.name} has {model.cfg.d_vocab} "
            "tokens; it was tokenized for another model"
        )
    sha = hashlib.sha256(rows.tobytes()).hexdigest()
    work.mkdir(parents=True, exist_ok=True)
    tmp = work / f".{ROWS}.{os.getpid()}.npy"
    np.save(tmp, rows)
    os.replace(tmp, work / ROWS)
    meta = {
        "description": what,
        "sha256": sha,
        "starts": starts.tolist(),
        "doc_starts": doc_starts.tolist(),
        "doc_names": names,
    }
    tmpj = work / f".{CORPUS}.{os.getpid()}"
    tmpj.write_text(json.dumps(meta), "utf-8")
    os.replace(tmpj, work / CORPUS)
    return open_corpus(work)


def _stream(
    model: HookedTransformer,
    paths: Sequence[str] | npt.NDArray[Any] | None,
    need: int,
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
    return _tokenize(model, paths, need, log)


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
    model: HookedTransformer, paths: Sequence[str] | None, need: int, log: Callable[[str], None]
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64], list[str], str]:
    from lenscope.data import iter_documents

    tok = model.tokenizer
    if tok is None:
        raise InputError(
            f"{model.cfg.name} has no tokenizer; give a token dataset directory as the corpus"
        )
    what = "the Python standard library" if not paths else ", ".join(paths)
    log(f"tokenizing {what} with {model.cfg.name}'s tokenizer")
    docs = sorted(
        iter_documents(list(paths) if paths else None),
        key=lambda d: hashlib.sha256(d.name.encode()).digest(),
    )
    sep = tok.eos_id if tok.eos_id is not None else tok.pad_id
    parts: list[npt.NDArray[np.int32]] = []
    starts: list[int] = []
    names: list[str] = []
    total = 0
    for i in range(0, len(docs), 64):
        chunk = docs[i : i + 64]
        for d, enc in zip(
            chunk,
            tok.hf.encode_batch([d.text for d in chunk], add_special_tokens=False),
            strict=True,
        ):
            starts.append(total)
            names.append(d.name)
            ids = np.asarray([*enc.ids, sep], dtype=np.int32)
            parts.append(ids)
            total += len(ids)
        if total >= need:
            break
    return np.concatenate(parts), np.asarray(starts, dtype=np.int64), names, what
