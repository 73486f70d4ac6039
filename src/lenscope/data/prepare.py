"""A training recipe's data, prepared once: a BPE tokenizer trained on the corpus and the corpus
tokenized with it into a token dataset, cached under LENSCOPE_HOME/data."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from lenscope.artifacts import lenscope_home
from lenscope.data.corpus import CorpusStats, default_corpus_root, iter_documents
from lenscope.data.tokenizer import train_bpe
from lenscope.data.tokens import TokenDataset, build_token_dataset
from lenscope.errors import ArtifactError


def data_key(corpus: Sequence[str], vocab: int, limit_bytes: int | None) -> str:
    """The name under LENSCOPE_HOME/data of a recipe's token dataset (corpus, vocab, limit)."""
    if not corpus:
        name = "stdlib"
        src = str(default_corpus_root())
    else:
        name = "corpus"
        src = json.dumps([str(Path(c).resolve()) for c in corpus])
    h = hashlib.sha256(f"{src}|{limit_bytes}".encode()).hexdigest()[:8]
    return f"{name}-{h}-bpe{vocab}"


def prepare_data(
    corpus: Sequence[str],
    vocab: int,
    limit_bytes: int | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TokenDataset:
    """Open the cached token dataset for this corpus and vocabulary, building it when missing."""
    dest = lenscope_home() / "data" / data_key(corpus, vocab, limit_bytes)
    if (dest / "manifest.json").is_file():
        try:
            return TokenDataset.open(dest)
        except ArtifactError as e:
            log(f"rebuilding the token dataset at {dest}: {e}")
    paths = list(corpus) or None
    what = "the Python standard library" if paths is None else ", ".join(corpus)
    log(f"preparing data: training a {vocab}-token byte-level BPE on {what}")
    stats = CorpusStats()
    docs = list(iter_documents(paths, limit_bytes=limit_bytes, stats=stats))
    tok = train_bpe((d.text for d in docs), vocab)
    ds = build_token_dataset(
        docs,
        tok,
        dest,
        progress=progress,
        provenance={
            "corpus": what,
            "documents": stats.documents,
            "bytes": stats.text_bytes,
            "skipped_non_utf8": stats.skipped_non_utf8,
            "limit_bytes": limit_bytes,
        },
    )
    log(
        f"token dataset: {len(ds.train):,} train / {len(ds.val):,} val tokens from "
        f"{stats.documents} documents ({stats.skipped_non_utf8} non-UTF-8 files skipped)"
    )
    return ds
