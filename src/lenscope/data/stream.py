"""A token stream for a model: the one answer to "which tokens does this instrument read?".

`token_stream(model, paths)` returns train and held-out streams in the model's own tokenization,
memory-mapped from a token dataset under `LENSCOPE_HOME/data` (built once, in bounded memory):

  paths = [a token dataset directory]  that dataset as it is (its vocabulary must fit the model);
  paths = text files / directories     those files (`.py .txt .md .rst .jsonl .parquet`) tokenized
                                       with the model's tokenizer, cached until a file changes;
                                       when the split by name leaves less than a fiftieth for
                                       validation, the last twentieth of train is held out too;
  paths = None                         the default corpus: a dataset already tokenized with this
                                       very tokenizer (the model's own training data, else a
                                       standard-library dataset of `prepare_data`'s or of this
                                       module's), else the Python standard library tokenized
                                       with the model's tokenizer and cached.

Every document is followed by a separator: the tokenizer's end-of-text token, else its
beginning-of-text token. Documents go to the held-out split by `split_of(name, 0, 0.02)`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from lenscope.artifacts import lenscope_home, read_manifest
from lenscope.data.corpus import iter_documents
from lenscope.data.prepare import data_key
from lenscope.data.tokenizer import tokenizer_hash
from lenscope.data.tokens import KIND, TokenDataset, build_token_dataset
from lenscope.errors import ArtifactError, InputError

if TYPE_CHECKING:
    from lenscope.model import HookedTransformer

TokenArray = npt.NDArray[Any]
STDLIB = "the Python standard library"


@dataclass(frozen=True)
class DocumentStream:
    """One token stream with where each document starts in it and the documents' names."""

    tokens: TokenArray
    doc_starts: npt.NDArray[np.int64]
    doc_names: list[str]
    source: str


@dataclass(frozen=True)
class TokenStream:
    """Train and held-out token streams for a model; `source` says where they came from."""

    train: TokenArray
    val: TokenArray
    source: str
    dataset: TokenDataset | None = None

    def train_documents(self) -> DocumentStream:
        """The train stream with its documents (sorted by start; none for an anonymous stream)."""
        if self.dataset is None:
            return DocumentStream(self.train, np.zeros(0, np.int64), [], self.source)
        docs = self.dataset.documents().to_pydict()
        keep = [i for i, s in enumerate(docs["split"]) if s == "train"]
        starts = np.asarray([docs["offset"][i] for i in keep], dtype=np.int64)
        names = [docs["name"][i] for i in keep]
        o = np.argsort(starts, kind="stable")
        return DocumentStream(self.train, starts[o], [names[i] for i in o], self.source)


def token_stream(
    model: HookedTransformer,
    paths: Sequence[Path | str] | None = None,
    *,
    limit_bytes: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TokenStream:
    """Train/val token streams for `model` from `paths` (see the module docstring).

    `limit_bytes` reads at most about that much text (whole documents) from a text corpus.
    """
    given = [str(p) for p in paths or []]
    ds = dataset_dir(given)
    if ds is not None:
        return _whole(model, ds, f"token dataset {given[0]}")
    sep = separator(model)
    if given:
        return _text_files(model, given, sep, limit_bytes, progress, log)
    cached = cached_default(model) if limit_bytes is None else None
    if cached is not None:
        return _whole(model, cached, f"the default corpus (token dataset {cached.path})")
    return _stdlib(model, sep, limit_bytes, progress, log)


def dataset_dir(paths: Sequence[str]) -> TokenDataset | None:
    """The token dataset when `paths` is one token dataset directory, else None."""
    if len(paths) == 1 and (Path(paths[0]) / "manifest.json").is_file():
        return TokenDataset.open(paths[0])
    return None


def separator(model: HookedTransformer) -> int:
    """The token that follows each document in `model`'s streams; `InputError` if there is none."""
    tok = model.tokenizer
    if tok is None:
        raise InputError(
            f"{model.cfg.name} has no tokenizer, so it cannot read a text corpus; give a token "
            "dataset directory instead"
        )
    sep = tok.eos_id if tok.eos_id is not None else tok.bos_id
    if sep is None:
        raise InputError(
            f"{model.cfg.name}'s tokenizer has no end- or start-of-text token to separate "
            "documents; give a token dataset directory instead"
        )
    return sep


def cached_default(model: HookedTransformer) -> TokenDataset | None:
    """The default corpus already tokenized with `model`'s tokenizer, if any: the model's own
    training data, else a standard-library token dataset."""
    if model.tokenizer is None:
        return None
    want = tokenizer_hash(model.tokenizer.hf)
    data = lenscope_home() / "data"
    for d in (
        _training_data(model),
        data / data_key((), model.cfg.d_vocab, None),
        data / f"stdlib-tok{want[:8]}",
    ):
        if d is None or not (d / "manifest.json").is_file():
            continue
        try:
            if read_manifest(d, KIND).data.get("tokenizer_sha256") == want:
                return TokenDataset.open(d)
        except ArtifactError:
            continue
    return None


def _training_data(model: HookedTransformer) -> Path | None:
    """The token dataset that `model`'s manifest says it was trained on."""
    man = getattr(model, "manifest", None)
    prov = getattr(man, "provenance", None)
    data = prov.get("data") if isinstance(prov, dict) else None
    p = data.get("path") if isinstance(data, dict) else None
    return Path(p) if isinstance(p, str) else None


def _whole(model: HookedTransformer, ds: TokenDataset, source: str) -> TokenStream:
    if ds.vocab_size > model.cfg.d_vocab:
        raise InputError(
            f"{source} has a {ds.vocab_size}-token vocabulary but {model.cfg.name} reads "
            f"{model.cfg.d_vocab}; use data tokenized for this model"
        )
    return TokenStream(ds.train, ds.val, source, ds)


def _open_cached(dest: Path) -> TokenDataset | None:
    if not (dest / "manifest.json").is_file():
        return None
    try:
        return TokenDataset.open(dest)
    except ArtifactError:
        return None


def _tokenized(
    model: HookedTransformer,
    dest: Path,
    paths: list[str] | None,
    sep: int,
    limit_bytes: int | None,
    progress: bool,
    log: Callable[[str], None],
) -> TokenDataset:
    """The token dataset at `dest`, else `paths` (None: the stdlib) tokenized into it with the
    model's tokenizer, streamed in bounded memory."""
    assert model.tokenizer is not None
    ds = _open_cached(dest)
    if ds is not None:
        return ds
    what = STDLIB if paths is None else ", ".join(paths)
    log(f"tokenizing {what} with {model.cfg.name}'s tokenizer into {dest}")
    corpus = STDLIB if paths is None else [str(Path(p).resolve()) for p in paths]
    return build_token_dataset(
        iter_documents(paths, limit_bytes=limit_bytes),
        model.tokenizer.hf,
        dest,
        progress=progress,
        provenance={"corpus": corpus, "for": model.cfg.name, "limit_bytes": limit_bytes},
        sep_id=sep,
    )


def _stdlib(
    model: HookedTransformer,
    sep: int,
    limit_bytes: int | None,
    progress: bool,
    log: Callable[[str], None],
) -> TokenStream:
    assert model.tokenizer is not None
    key = tokenizer_hash(model.tokenizer.hf)[:8]
    name = f"stdlib-tok{key}" if limit_bytes is None else f"stdlib-tok{key}-{limit_bytes}"
    dest = lenscope_home() / "data" / name
    ds = _tokenized(model, dest, None, sep, limit_bytes, progress, log)
    return TokenStream(ds.train, ds.val, f"the default corpus (token dataset {dest})", ds)


def files_key(paths: Sequence[str]) -> str:
    """A digest of every file under `paths` (name, size, mtime): any edit makes a new one."""
    h = hashlib.sha256()
    for p in sorted(Path(x).resolve() for x in paths):
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            st = f.stat() if f.exists() else None
            h.update(f"{f}\0{st and st.st_size}\0{st and st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _text_files(
    model: HookedTransformer,
    paths: list[str],
    sep: int,
    limit_bytes: int | None,
    progress: bool,
    log: Callable[[str], None],
) -> TokenStream:
    """Text files tokenized with the model's tokenizer into a token dataset on disk (bounded
    memory), cached under LENSCOPE_HOME/data until a file changes."""
    assert model.tokenizer is not None
    limit = "" if limit_bytes is None else f":{limit_bytes}"
    tok = tokenizer_hash(model.tokenizer.hf)
    key = hashlib.sha256(f"{tok}:{sep}:{files_key(paths)}{limit}".encode()).hexdigest()
    dest = lenscope_home() / "data" / f"text-{key[:16]}"
    ds = _tokenized(model, dest, paths, sep, limit_bytes, progress, log)
    train, val = ds.train, ds.val
    if len(val) < len(train) // 50:  # too few documents for a split by name: hold out the tail
        cut = len(train) - max(len(train) // 20, 1)
        train, val = train[:cut], np.concatenate([train[cut:], val])
    where = f"{len(paths)} path(s) tokenized with {model.cfg.name}'s tokenizer at {dest}"
    return TokenStream(train, val, where, ds)
