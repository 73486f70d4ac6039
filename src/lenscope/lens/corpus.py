"""Token streams for training and evaluating a tuned lens, in the model's own tokenization.

Default: the standard-library token dataset (`prepare_data((), 4096)`, cached under
LENSCOPE_HOME/data). When the model's tokenizer is the dataset's (lenscope's own models), its
train/val streams are used as they are; otherwise each document is decoded with the dataset's
tokenizer and re-encoded with the model's (byte-level BPE decodes losslessly), keeping the
dataset's train/val split. User corpora (`--corpus FILE_OR_DIR ...`) are encoded with the
model's tokenizer and split by document name like the token datasets are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lenscope.data import iter_documents, split_of
from lenscope.errors import InputError
from lenscope.model.transformer import HookedTransformer

Tokens = npt.NDArray[np.int64]
VAL_FRACTION = 0.02


@dataclass
class LensCorpus:
    """Train and held-out token streams in the model's tokenization."""

    train: npt.NDArray[Any]
    val: npt.NDArray[Any]
    description: str


def _same_tokenizer(model: HookedTransformer, other: Any) -> bool:
    tok = model.tokenizer
    if tok is None:
        return False
    if tok.hf.to_str() == other.to_str():
        return True
    return bool(tok.hf.get_vocab(with_added_tokens=True) == other.get_vocab(with_added_tokens=True))


def _encode_docs(
    model: HookedTransformer, docs: Iterable[tuple[str, Callable[[], str]]], max_tokens: int
) -> tuple[Tokens, Tokens]:
    """(split, text thunk) pairs -> train and val streams, each document followed by EOS.

    Each split stops growing at `max_tokens` (texts of skipped documents are never built).
    """
    tok = model.tokenizer
    assert tok is not None
    sep = [tok.eos_id] if tok.eos_id is not None else []
    parts: dict[str, list[int]] = {"train": [], "val": []}
    for split, text in docs:
        if len(parts[split]) < max_tokens:
            parts[split] += tok.encode(text()) + sep
    return np.asarray(parts["train"], np.int64), np.asarray(parts["val"], np.int64)


def _const(text: str) -> Callable[[], str]:
    return lambda: text


def _split_stream(train: Tokens, val: Tokens) -> tuple[Tokens, Tokens]:
    """When documents all landed on one side, hold out the last tenth of the stream."""
    if len(val) and len(train):
        return train, val
    stream = np.concatenate([train, val])
    cut = int(len(stream) * 0.9)
    return stream[:cut], stream[cut:]


def lens_corpus(
    model: HookedTransformer,
    corpus: Sequence[str] = (),
    *,
    limit_bytes: int | None = None,
    max_tokens: int = 4_000_000,
    log: Callable[[str], None] = print,
) -> LensCorpus:
    """Train/val token streams for `model` from its corpus (default: the stdlib dataset)."""
    if model.tokenizer is None and corpus:
        raise InputError(f"{model.cfg.name} has no tokenizer, so it cannot read a text corpus")
    if not corpus:
        from lenscope.train.prepare import prepare_data

        ds = prepare_data((), 4096, limit_bytes, log=log)
        ds_tok = ds.tokenizer()
        if model.tokenizer is None or _same_tokenizer(model, ds_tok):
            if ds.vocab_size > model.cfg.d_vocab:
                raise InputError(
                    f"the stdlib dataset has {ds.vocab_size} tokens but {model.cfg.name} reads "
                    f"{model.cfg.d_vocab}; pass --corpus with text files instead"
                )
            return LensCorpus(ds.train, ds.val, f"stdlib token dataset {ds.path.name}")
        log(f"re-encoding the stdlib dataset with {model.cfg.name}'s own tokenizer")
        table = ds.documents()
        rows = zip(
            table.column("split").to_pylist(),
            table.column("offset").to_pylist(),
            table.column("tokens").to_pylist(),  # the document's length in tokens
            strict=True,
        )

        def text(split: str, at: int, n: int) -> Callable[[], str]:
            return lambda: str(ds_tok.decode(ds.split(split)[at : at + n].tolist()))

        docs = ((s, text(s, at, n)) for s, at, n in rows)
        train, val = _encode_docs(model, docs, max_tokens)
        return LensCorpus(
            *_split_stream(train, val), f"stdlib dataset re-encoded for {model.cfg.name}"
        )
    docs = (
        (split_of(d.name, 0, VAL_FRACTION), _const(d.text))
        for d in iter_documents(list(corpus), limit_bytes=limit_bytes)
    )
    train, val = _encode_docs(model, docs, max_tokens)
    train, val = _split_stream(train, val)
    if len(train) < 2 or len(val) < 2:
        raise InputError(f"the corpus {', '.join(corpus)} holds too little text for a tuned lens")
    if int(max(train.max(), val.max())) >= model.cfg.d_vocab:
        raise InputError(f"the tokenizer yields ids beyond {model.cfg.name}'s vocabulary")
    return LensCorpus(train, val, ", ".join(corpus))
