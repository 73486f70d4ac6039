"""A thin wrapper over a Hugging Face `tokenizers.Tokenizer` loaded from `tokenizer.json`.

A token shown on its own (`str_tokens`, `token_str`) whose bytes are not whole UTF-8 characters (a
byte-level BPE piece of a multi-byte character, a `<0xE2>` byte-fallback token) would decode to
U+FFFD; those bytes are shown as `<0xNN>` instead, one per byte, as sentencepiece names them.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer

from lenscope.errors import CheckpointError
from lenscope.text import check_text

_BOS_CANDIDATES = ("<|endoftext|>", "<s>", "<|begin_of_text|>", "<bos>", "<|im_start|>")
_EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|im_end|>")
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
REPLACEMENT = "\ufffd"


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
        decoder = json.loads(tok.decoder.__getstate__()) if tok.decoder is not None else {}
        self._byte_level = _has_byte_level(decoder)

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
        """Token ids of `text`; text that is not valid Unicode (a lone surrogate) is an
        `InputError`, so library calls fail as clearly as the CLI and the server do."""
        check_text(text)
        ids: list[int] = self.hf.encode(text, add_special_tokens=False).ids
        if prepend_bos and self.bos_id is not None:
            ids = [self.bos_id, *ids]
        return ids

    def decode(self, ids: list[int]) -> str:
        out: str = self.hf.decode(ids, skip_special_tokens=False)
        return out

    def str_tokens(self, ids: list[int]) -> list[str]:
        """Each token as the text it stands for, decoded one at a time (bytes that are no whole
        character on their own as `<0xNN>`)."""
        return [self.token_str(i) for i in ids]

    def token_str(self, i: int) -> str:
        text = self.decode([i])
        if REPLACEMENT not in text:
            return text
        raw = self.token_bytes(i)
        if raw is None:
            return text
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return show_bytes(raw)
        return text  # the token's own text holds U+FFFD

    def token_bytes(self, i: int) -> bytes | None:
        """The bytes a token stands for, where the vocabulary says (byte-level BPE pieces and
        `<0xNN>` byte tokens); None for other tokens."""
        piece = self.hf.id_to_token(i)
        if piece is None:
            return None
        m = _BYTE_PIECE.fullmatch(piece)
        if m:
            return bytes([int(m.group(1), 16)])
        if self._byte_level:
            table = _unicode_to_byte()
            if piece and all(ch in table for ch in piece):
                return bytes(table[ch] for ch in piece)
        return None


def show_bytes(raw: bytes) -> str:
    """UTF-8 text, with every byte that is not part of a whole character as `<0xNN>`."""
    out, at = [], 0
    while at < len(raw):
        try:
            out.append(raw[at:].decode("utf-8"))
            break
        except UnicodeDecodeError as e:
            out.append(raw[at : at + e.start].decode("utf-8"))
            out += [f"<0x{b:02X}>" for b in raw[at + e.start : at + e.end]]
            at += e.end
    return "".join(out)


def _has_byte_level(decoder: dict[str, object]) -> bool:
    """Whether the tokenizer's decoder (or one in its sequence) is GPT-2's byte-level one."""
    if decoder.get("type") == "ByteLevel":
        return True
    parts = decoder.get("decoders")
    return isinstance(parts, list) and any(
        isinstance(d, dict) and _has_byte_level(d) for d in parts
    )


@cache
def _unicode_to_byte() -> dict[str, int]:
    """The inverse of GPT-2's `bytes_to_unicode`: the printable character each byte is spelled as
    in a byte-level BPE vocabulary."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = {b: chr(b) for b in printable}
    extra = (b for b in range(256) if b not in chars)
    chars |= {b: chr(256 + n) for n, b in enumerate(extra)}
    return {c: b for b, c in chars.items()}


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
