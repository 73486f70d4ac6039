"""Watched tokens (`--watch " is" " are"`) and positions: resolved once, explained when odd.

A watched string that is several tokens is not refused: lenscope watches its first token and says
so in the result's notes, showing how the string tokenizes (Ecco silently uses the first token).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lenscope.errors import InputError
from lenscope.model.transformer import HookedTransformer

if TYPE_CHECKING:
    from lenscope.model.tokenizer import Tokenizer


@dataclass
class WatchedToken:
    """A watched string and the token that stands for it (`pieces`: how the string tokenizes)."""

    text: str
    id: int
    token: str
    pieces: list[str]
    note: str | None = None


_names: weakref.WeakKeyDictionary[Tokenizer, dict[int, str]] = weakref.WeakKeyDictionary()


def token_strs(model: HookedTransformer, ids: Sequence[int]) -> list[str]:
    """Each id as text (`str_tokens`, remembered per tokenizer); `#17` without a tokenizer."""
    tok = model.tokenizer
    if tok is None:
        return [f"#{i}" for i in ids]
    known = _names.setdefault(tok, {})
    missing = sorted({i for i in ids if i not in known})
    if missing:
        known.update(zip(missing, tok.str_tokens(missing), strict=True))
    return [known[i] for i in ids]


def resolve_watch(model: HookedTransformer, texts: Sequence[str]) -> list[WatchedToken]:
    """Map each watched string to one token id, noting multi-token strings (first token used).

    Without a tokenizer, watched strings must be token ids ("17" or "#17").
    """
    out: list[WatchedToken] = []
    for text in texts:
        if model.tokenizer is None:
            raw = text.removeprefix("#")
            if not raw.isdigit() or not 0 <= int(raw) < model.cfg.d_vocab:
                raise InputError(
                    f"{model.cfg.name} has no tokenizer, so watched tokens must be ids in "
                    f"[0, {model.cfg.d_vocab}); got {text!r}"
                )
            out.append(WatchedToken(text, int(raw), f"#{raw}", [f"#{raw}"]))
            continue
        ids = model.tokenizer.encode(text, prepend_bos=False)
        if not ids:
            raise InputError(f"watched string {text!r} is no token at all; give e.g. ' is'")
        pieces = model.tokenizer.str_tokens(ids)
        note = None
        if len(ids) > 1:
            note = (
                f"watched {text!r} is {len(ids)} tokens {pieces}; watching its first token "
                f"{pieces[0]!r}"
            )
        if ids[0] >= model.cfg.d_vocab:
            raise InputError(
                f"watched {text!r} encodes to id {ids[0]}, beyond the model's vocabulary of "
                f"{model.cfg.d_vocab}"
            )
        out.append(WatchedToken(text, ids[0], pieces[0], pieces, note))
    return out


def resolve_position(position: int, length: int, what: str = "position") -> int:
    """A position in [0, length) from a Python-style index (negative counts from the end)."""
    if not -length <= position < length:
        raise InputError(
            f"{what} {position} is out of range: the sequence has {length} tokens, so use "
            f"0..{length - 1} (or -{length}..-1)"
        )
    return position % length
