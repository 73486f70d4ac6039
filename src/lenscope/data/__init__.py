"""Layer 2, data: corpora, byte-level BPE tokenizers, token dataset artifacts, token streams for a
model (`token_stream`, `token_sample`), a recipe's prepared data (`prepare_data`), batches."""

from __future__ import annotations

from lenscope.data.batches import iter_eval_batches, sample_batch
from lenscope.data.corpus import (
    SUPPORTED_SUFFIXES,
    CorpusStats,
    Document,
    default_corpus_root,
    iter_documents,
)
from lenscope.data.prepare import data_key, prepare_data
from lenscope.data.sample import token_sample
from lenscope.data.stream import DocumentStream, TokenStream, token_stream
from lenscope.data.tokenizer import (
    EOT,
    EOT_ID,
    eot_id,
    load_tokenizer,
    save_tokenizer,
    tokenizer_hash,
    train_bpe,
)
from lenscope.data.tokens import TokenDataset, build_token_dataset, split_of, token_dtype

__all__ = [
    "EOT",
    "EOT_ID",
    "SUPPORTED_SUFFIXES",
    "CorpusStats",
    "Document",
    "DocumentStream",
    "TokenDataset",
    "TokenStream",
    "build_token_dataset",
    "data_key",
    "default_corpus_root",
    "eot_id",
    "iter_documents",
    "iter_eval_batches",
    "load_tokenizer",
    "prepare_data",
    "sample_batch",
    "save_tokenizer",
    "split_of",
    "token_dtype",
    "token_sample",
    "token_stream",
    "tokenizer_hash",
    "train_bpe",
]
