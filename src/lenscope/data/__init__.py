"""Layer 2, data: corpora, byte-level BPE tokenizers, token dataset artifacts, token streams for a
model (`token_stream`, `token_sample`), a recipe's prepared data (`prepare_data`), batches."""

from __future__ import annotations

from lenscope.data.batches import iter_eval_batches, sample_batch
from lenscope.data.prepare import prepare_data
from lenscope.data.sample import token_sample
from lenscope.data.stream import TokenStream, token_stream
from lenscope.data.tokens import TokenDataset

__all__ = [
    "TokenDataset",
    "TokenStream",
    "iter_eval_batches",
    "prepare_data",
    "sample_batch",
    "token_sample",
    "token_stream",
]
