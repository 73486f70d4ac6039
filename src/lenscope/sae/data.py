"""Token streams for SAE training and evaluation (activations come from `lenscope.model.capture`).

`resolve_tokens` finds the text an SAE should see, tokenized with the model's own tokenizer:
a token dataset directory, text files, or (default) the model's training dataset when its
tokenizer matches, else the standard library corpus tokenized once and cached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lenscope.artifacts import lenscope_home
from lenscope.errors import ArtifactError, InputError
from lenscope.model import HookedTransformer

TokenArray = npt.NDArray[Any]


@dataclass
class TokenStreams:
    train: TokenArray
    val: TokenArray
    source: str


def resolve_tokens(
    model: HookedTransformer, data: Sequence[str] | None = None, *, progress: bool = True
) -> TokenStreams:
    """Train/val token streams for `model` (see the module docstring for the search order)."""
    from lenscope.data import TokenDataset

    paths = list(data or [])
    if len(paths) == 1 and (Path(paths[0]) / "manifest.json").is_file():
        ds = TokenDataset.open(paths[0])
        _check_vocab(model, ds.vocab_size, paths[0])
        return TokenStreams(ds.train, ds.val, f"token dataset {paths[0]}")
    if model.tokenizer is None:
        raise InputError(
            f"{model.cfg.name} has no tokenizer: give a token dataset directory as data"
        )
    if paths:
        return _tokenize(model, paths, progress)
    ds_path = _model_dataset(model)
    if ds_path is not None:
        ds = TokenDataset.open(ds_path)
        return TokenStreams(ds.train, ds.val, f"the model's training data {ds_path}")
    return _stdlib(model, progress)


def _check_vocab(model: HookedTransformer, vocab: int, where: str) -> None:
    if vocab > model.cfg.d_vocab:
        raise InputError(
            f"{where} has a {vocab}-token vocabulary but {model.cfg.name} reads {model.cfg.d_vocab}"
            "; use data tokenized for this model"
        )


def _tok_hash(model: HookedTransformer) -> str:
    from lenscope.data import tokenizer_hash

    assert model.tokenizer is not None
    return tokenizer_hash(model.tokenizer.hf)


def _model_dataset(model: HookedTransformer) -> Path | None:
    man = getattr(model, "manifest", None)
    data = getattr(man, "provenance", {}).get("data", {}) if man is not None else {}
    p = data.get("path") if isinstance(data, dict) else None
    if not isinstance(p, str) or not (Path(p) / "manifest.json").is_file():
        return None
    try:
        from lenscope.artifacts import read_manifest

        dm = read_manifest(p, "tokens")
    except ArtifactError:
        return None
    if dm.data.get("tokenizer_sha256") != _tok_hash(model):
        return None
    return Path(p)


def _stdlib(model: HookedTransformer, progress: bool) -> TokenStreams:
    from lenscope.data import TokenDataset, build_token_dataset, iter_documents

    assert model.tokenizer is not None
    dest = lenscope_home() / "data" / f"stdlib-tok{_tok_hash(model)[:8]}"
    if (dest / "manifest.json").is_file():
        try:
            ds = TokenDataset.open(dest)
            return TokenStreams(ds.train, ds.val, f"the standard library, tokenized at {dest}")
        except ArtifactError:
            pass
    ds = build_token_dataset(
        iter_documents(None),
        model.tokenizer.hf,
        dest,
        progress=progress,
        provenance={"corpus": "the Python standard library", "for": model.cfg.name},
    )
    return TokenStreams(ds.train, ds.val, f"the standard library, tokenized at {dest}")


def _files_key(paths: list[str]) -> str:
    """A digest of every file under `paths` (name, size, mtime): any edit makes a new one."""
    h = hashlib.sha256()
    for p in sorted(Path(x).resolve() for x in paths):
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            st = f.stat() if f.exists() else None
            h.update(f"{f}\0{st and st.st_size}\0{st and st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _tokenize(model: HookedTransformer, paths: list[str], progress: bool) -> TokenStreams:
    """Text files tokenized with the model's tokenizer into a token dataset on disk (bounded
    memory, a progress bar), cached under LENSCOPE_HOME/data until a file changes."""
    from lenscope.data import TokenDataset, build_token_dataset, iter_documents

    tok = model.tokenizer
    assert tok is not None
    sep = tok.eos_id if tok.eos_id is not None else tok.bos_id
    if sep is None:
        raise InputError(
            f"{model.cfg.name}'s tokenizer has no end- or start-of-text token to separate "
            "documents; give a token dataset directory as data"
        )
    key = hashlib.sha256(f"{_tok_hash(model)}:{sep}:{_files_key(paths)}".encode()).hexdigest()
    dest = lenscope_home() / "data" / f"text-{key[:16]}"
    ds: TokenDataset | None = None
    if (dest / "manifest.json").is_file():
        try:
            ds = TokenDataset.open(dest)
        except ArtifactError:
            ds = None
    if ds is None:
        ds = build_token_dataset(
            iter_documents(paths),
            tok.hf,
            dest,
            progress=progress,
            provenance={"corpus": [str(Path(p).resolve()) for p in paths], "for": model.cfg.name},
            sep_id=sep,
        )
    train, val = ds.train, ds.val
    if len(val) < len(train) // 50:  # too few documents for a split by name: hold out the tail
        cut = len(train) - max(len(train) // 20, 1)
        train, val = train[:cut], np.concatenate([train[cut:], val])
    return TokenStreams(
        train, val, f"{len(paths)} path(s) tokenized with {model.cfg.name}'s tokenizer at {dest}"
    )
