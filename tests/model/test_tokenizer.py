"""Tokens shown one at a time: bytes that are no whole UTF-8 character on their own appear as
`<0xNN>` (never U+FFFD), and every other token reads exactly as the tokenizer decodes it."""

from __future__ import annotations

import re

import pytest
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers

from lenscope.model.load import shipped_models_dir
from lenscope.model.tokenizer import Tokenizer, show_bytes

BYTE = re.compile(r"<0x([0-9A-F]{2})>")
FFFD = "\ufffd"


def as_bytes(shown: str) -> bytes:
    """The bytes a displayed token stands for: `<0xNN>` pieces as bytes, the rest as UTF-8."""
    out, at = b"", 0
    for m in BYTE.finditer(shown):
        out += shown[at : m.start()].encode("utf-8") + bytes([int(m.group(1), 16)])
        at = m.end()
    return out + shown[at:].encode("utf-8")


@pytest.fixture(scope="module")
def mini() -> Tokenizer:
    return Tokenizer.from_file(shipped_models_dir() / "mini")


def test_mini_byte_fragments_show_their_bytes(mini: Tokenizer) -> None:
    fragments = [i for i in range(mini.vocab_size) if FFFD in mini.decode([i])]
    assert len(fragments) > 100  # the 128 high bytes, less those merged away, plus some merges
    for i in fragments:
        shown = mini.token_str(i)
        assert FFFD not in shown and BYTE.search(shown), (i, shown)
        # what the tokenizer itself makes of the token is exactly these bytes, lossily decoded
        assert as_bytes(shown).decode("utf-8", errors="replace") == mini.decode([i])
    # é is C3 A9, an em dash E2 80 94: pieces of characters, one <0xNN> per byte
    assert mini.str_tokens(mini.encode("é")) == ["<0xC3>", "<0xA9>"]
    assert mini.str_tokens(mini.encode("—")) == ["<0xE2><0x80>", "<0x94>"]


def test_mini_whole_tokens_are_unchanged(mini: Tokenizer) -> None:
    whole = [i for i in range(mini.vocab_size) if FFFD not in mini.decode([i])]
    assert len(whole) > 3000
    assert [mini.token_str(i) for i in whole] == [mini.decode([i]) for i in whole]
    text = "The cat sat on the mat, (twice)."
    ids = mini.encode(text)
    assert mini.str_tokens(ids) == [mini.decode([i]) for i in ids]
    assert "".join(mini.str_tokens(ids)) == text


@pytest.mark.parametrize("text", ["héllo — “quoted” 日本語 ✓", "naïve café", "a\u00a0b 🙂"])
def test_mini_pieces_spell_the_text_byte_for_byte(mini: Tokenizer, text: str) -> None:
    ids = mini.encode(text)
    assert b"".join(as_bytes(s) for s in mini.str_tokens(ids)) == text.encode("utf-8")
    assert mini.decode(ids) == text  # decoding a whole sequence is untouched


def byte_level() -> Tokenizer:
    """A hand-made GPT-2-style BPE: bytes 0xA1..0xFF spell themselves (Ã is C3, © is A9, ï ¿ ½
    are EF BF BD, the UTF-8 of U+FFFD itself)."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    for piece in ("ca", "caf", "cafÃ", "Ã©", "ï¿", "ï¿½"):
        vocab[piece] = len(vocab)
    merges = [("c", "a"), ("ca", "f"), ("caf", "Ã"), ("ï", "¿"), ("ï¿", "½")]
    hf = HFTokenizer(models.BPE(vocab, merges))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    return Tokenizer(hf)


def test_hand_made_byte_level_tokens() -> None:
    tok = byte_level()
    vocab = tok.hf.get_vocab()
    ids = tok.encode("café")
    assert [tok.hf.id_to_token(i) for i in ids] == ["cafÃ", "©"]
    assert tok.str_tokens(ids) == ["caf<0xC3>", "<0xA9>"]  # the valid prefix stays text
    assert tok.token_str(vocab["Ã©"]) == "é"  # a whole two-byte character: unchanged
    assert tok.token_str(vocab["ï¿½"]) == FFFD  # the token really is U+FFFD
    assert tok.token_str(vocab["ï¿"]) == "<0xEF><0xBF>"
    assert tok.token_str(vocab["a"]) == "a"


def test_byte_fallback_tokens() -> None:
    """Sentencepiece-style vocabularies name byte tokens `<0xNN>` already; alone they decode to
    U+FFFD, so they show their own name."""
    vocab = {"<unk>": 0, "<0xC3>": 1, "<0xA9>": 2, "▁": 3, "a": 4, "▁a": 5}
    hf = HFTokenizer(models.BPE(vocab, [("▁", "a")], unk_token="<unk>", byte_fallback=True))
    hf.pre_tokenizer = pre_tokenizers.Metaspace()
    hf.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    tok = Tokenizer(hf)
    ids = tok.encode("aé")
    assert tok.decode(ids) == " aé"
    assert tok.str_tokens(ids) == [" a", "<0xC3>", "<0xA9>"]
    assert tok.token_str(vocab["<unk>"]) == "<unk>"


def test_a_word_level_token_that_is_u_fffd_stays() -> None:
    hf = HFTokenizer(models.WordLevel({"<unk>": 0, FFFD: 1, "w": 2}, unk_token="<unk>"))
    hf.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = Tokenizer(hf)
    assert tok.str_tokens([1, 2]) == [FFFD, "w"]


def test_show_bytes() -> None:
    assert show_bytes("plain é".encode()) == "plain é"
    assert show_bytes(b"\xe2\x80") == "<0xE2><0x80>"
    assert show_bytes(b"a\xff b\xc3\xa9\xc3") == "a<0xFF> bé<0xC3>"
    assert show_bytes(b"") == ""


def test_library_calls_refuse_text_that_is_not_unicode(mini: Tokenizer) -> None:
    """A lone surrogate reaching the library (a notebook's `model.to_tokens`, `Debugger.why`) is
    one clear InputError, not the tokenizer's internal TypeError; valid text still encodes."""
    from lenscope import Debugger, LogitDiff, load_model
    from lenscope.errors import InputError

    with pytest.raises(InputError, match=r"lone surrogate \(U\+D800\) at character 2"):
        mini.encode("ab\ud800")
    model = load_model("mini")
    with pytest.raises(InputError, match="lone surrogate"):
        model.to_tokens("x = \udcff")
    with pytest.raises(InputError, match="lone surrogate"):
        Debugger(model).why("def f(\ud800", LogitDiff(target=[")"], distractor=[","]))
    assert mini.encode("naïve 😀") == mini.hf.encode("naïve 😀", add_special_tokens=False).ids
