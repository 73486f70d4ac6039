"""Byte-level BPE tokenizers (Hugging Face `tokenizers`): train, save, load, fingerprint.

A trained tokenizer has the special token `<|endoftext|>` at id 0, used both as the beginning of
sequence and as the separator between documents. Byte-level pre-tokenization (no prefix space)
and the byte-level decoder make `decode(encode(text)) == text` for any text. Training is
deterministic for the same documents and vocabulary size.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from lenscope.errors import ArtifactError, InputError

EOT = "<|endoftext|>"
EOT_ID = 0
TOKENIZER_FILE = "tokenizer.json"
MIN_VOCAB = 256 + 1
MAX_VOCAB = 65536


def train_bpe(docs: Iterable[str], vocab_size: int = 4096) -> Tokenizer:
    """Train a byte-level BPE tokenizer on `docs` with at most `vocab_size` tokens.

    The vocabulary holds `<|endoftext|>` (id 0), the 256 byte symbols, then merges; a small corpus
    may yield fewer than `vocab_size` tokens (see `tok.get_vocab_size()`).
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise InputError(f"vocab_size must be an integer, got {vocab_size!r}")
    if not MIN_VOCAB <= vocab_size <= MAX_VOCAB:
        raise InputError(
            f"vocab_size {vocab_size} is out of range; choose {MIN_VOCAB}..{MAX_VOCAB} "
            "(256 bytes + <|endoftext|> at least)"
        )
    if isinstance(docs, str):
        raise InputError("docs must be an iterable of texts, not a single string; wrap it in [...]")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer=trainer)
    if tok.token_to_id(EOT) != EOT_ID:  # pragma: no cover - guaranteed by special_tokens order
        raise AssertionError(f"{EOT} did not get id {EOT_ID}")
    return tok


def tokenizer_hash(tok: Tokenizer) -> str:
    """SHA-256 of the tokenizer's JSON serialisation (its identity in manifests)."""
    return hashlib.sha256(tok.to_str().encode("utf-8")).hexdigest()


def eot_id(tok: Tokenizer) -> int:
    """The id of `<|endoftext|>` in `tok`; `InputError` if it has none."""
    i = tok.token_to_id(EOT)
    if i is None:
        raise InputError(f"the tokenizer has no {EOT} token; train one with train_bpe")
    return int(i)


def save_tokenizer(tok: Tokenizer, directory: Path | str) -> Path:
    """Write `directory/tokenizer.json` atomically (creating the directory); return its path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    dest = d / TOKENIZER_FILE
    fd, tmp = tempfile.mkstemp(prefix=f".{TOKENIZER_FILE}.", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(tok.to_str(pretty=True))
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def load_tokenizer(path: Path | str) -> Tokenizer:
    """Load a tokenizer from a `tokenizer.json` file or a directory holding one."""
    p = Path(path)
    f = p / TOKENIZER_FILE if p.is_dir() else p
    if not f.is_file():
        raise ArtifactError(
            f"no tokenizer at {f}; give a tokenizer.json or a directory holding one"
        )
    try:
        return Tokenizer.from_file(str(f))
    except Exception as e:  # tokenizers raises a bare Exception on bad JSON
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ArtifactError(f"{f} is not a valid tokenizer.json ({first}); re-save it") from None
