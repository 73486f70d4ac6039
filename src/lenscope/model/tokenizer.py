"""A thin wrapper over a Hugging Face `tokenizers.Tokenizer` loaded from `tokenizer.json`."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer

from lenscope.errors import CheckpointError

_BOS_CANDIDATES = ("<|endoftext|>", "<s>", "<|begin_of_text|>", "<bos>", "<|im_start|>")
_EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|im_end|>")


class Tokenizer:
    """Encode/decode text; `str_tokens` gives each token as readable text."""

    def __init__(
        self,
        tok: HFTokenizer,
        bos: str | None = None,
        eos: str | None = None,
        pad: str | None = None,
    ) -> None:
        self.hf = tok
        vocab = tok.get_vocab(with_added_tokens=True)
        self.bos_id = _first_id(vocab, [bos] if bos else list(_BOS_CANDIDATES))
        self.eos_id = _first_id(vocab, [eos] if eos else list(_EOS_CANDIDATES))
        pad_id = _first_id(vocab, [pad]) if pad else None
        self.pad_id: int = next(i for i in (pad_id, self.eos_id, self.bos_id, 0) if i is not None)
        self.vocab_size = tok.get_vocab_size(with_added_tokens=True)

    @classmethod
    def from_file(cls, path: Path | str) -> Tokenizer:
        """Load `tokenizer.json` (file or its directory); read special tokens from the config."""
        p = Path(path)
        f = p / "tokenizer.json" if p.is_dir() else p
        if not f.is_file():
            raise CheckpointError(f"no tokenizer.json in {p}; the checkpoint needs one for text")
        try:
            tok = HFTokenizer.from_file(str(f))
        except Exception as e:  # the tokenizers library raises plain Exceptions
            raise CheckpointError(f"{f} is not a valid tokenizer.json: {e}") from None
        bos = eos = pad = None
        cfg = f.parent / "tokenizer_config.json"
        if cfg.is_file():
            try:
                tc = json.loads(cfg.read_text("utf-8"))
            except json.JSONDecodeError:
                tc = {}
            bos, eos, pad = (_special(tc.get(k)) for k in ("bos_token", "eos_token", "pad_token"))
        return cls(tok, bos, eos, pad)

    def save(self, directory: Path) -> None:
        self.hf.save(str(directory / "tokenizer.json"))

    def encode(self, text: str, prepend_bos: bool = False) -> list[int]:
        ids: list[int] = self.hf.encode(text, add_special_tokens=False).ids
        if prepend_bos and self.bos_id is not None:
            ids = [self.bos_id, *ids]
        return ids

    def decode(self, ids: list[int]) -> str:
        out: str = self.hf.decode(ids, skip_special_tokens=False)
        return out

    def str_tokens(self, ids: list[int]) -> list[str]:
        """Each token as the text it stands for (byte-level tokens decoded one at a time)."""
        return [self.decode([i]) for i in ids]

    def token_str(self, i: int) -> str:
        return self.decode([i])


def _first_id(vocab: dict[str, int], names: list[str]) -> int | None:
    for n in names:
        if n in vocab:
            return vocab[n]
    return None


def _special(v: object) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("content"), str):
        return str(v["content"])
    return None
