"""Tests for lenscope.data.tokenizer: byte-level BPE training, round trips, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer

from lenscope.data.tokenizer import (
    EOT,
    eot_id,
    load_tokenizer,
    save_tokenizer,
    tokenizer_hash,
    train_bpe,
)
from lenscope.errors import ArtifactError, InputError


def test_eot_is_id_zero_and_vocab_bounded(small_tokenizer: Tokenizer) -> None:
    assert small_tokenizer.token_to_id(EOT) == 0
    assert eot_id(small_tokenizer) == 0
    assert 257 < small_tokenizer.get_vocab_size() <= 400
    # all 256 bytes are in the base alphabet
    assert len(small_tokenizer.get_vocab()) == small_tokenizer.get_vocab_size()


def test_round_trip_code_with_unicode(small_tokenizer: Tokenizer, code_samples: list[str]) -> None:
    unseen = [
        "λx: x ⊕ y  # ∀ε>0 ∃δ\n",
        "s = '\\x00\\u2603 ☃'\r\n\tif a != b: raise ValueError('ошибка')",
        "  leading spaces and trailing  ",
        "\x00\x01 control \x7f chars and 🇺🇦 flags and e\u0301 combining",
        "",
    ]
    for text in code_samples + unseen:
        ids = small_tokenizer.encode(text, add_special_tokens=False).ids
        assert small_tokenizer.decode(ids, skip_special_tokens=False) == text
        assert 0 not in ids


def test_merges_compress_training_text(small_tokenizer: Tokenizer, code_samples: list[str]) -> None:
    text = code_samples[0]
    assert len(small_tokenizer.encode(text).ids) < len(text.encode("utf-8")) / 2


def test_training_is_deterministic(code_samples: list[str]) -> None:
    a = train_bpe(code_samples * 5, vocab_size=320)
    b = train_bpe(iter(code_samples * 5), vocab_size=320)
    assert a.to_str() == b.to_str()
    assert tokenizer_hash(a) == tokenizer_hash(b)
    c = train_bpe(code_samples * 5, vocab_size=300)
    assert tokenizer_hash(a) != tokenizer_hash(c)


@pytest.mark.parametrize("size", [0, 256, 65537, -5])
def test_vocab_size_out_of_range(size: int) -> None:
    with pytest.raises(InputError, match=r"vocab_size .* out of range; choose 257\.\.65536"):
        train_bpe(["abc"], vocab_size=size)


def test_bad_training_arguments() -> None:
    with pytest.raises(InputError, match="integer"):
        train_bpe(["abc"], vocab_size=300.0)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="not a single string"):
        train_bpe("abc", vocab_size=300)


def test_save_and_load(tmp_path: Path, small_tokenizer: Tokenizer) -> None:
    f = save_tokenizer(small_tokenizer, tmp_path / "new" / "dir")
    assert f == tmp_path / "new" / "dir" / "tokenizer.json"
    for source in (f.parent, f, str(f)):
        loaded = load_tokenizer(source)
        assert tokenizer_hash(loaded) == tokenizer_hash(small_tokenizer)
        text = "print('héllo ✓')\n"
        assert loaded.encode(text).ids == small_tokenizer.encode(text).ids
    assert [p.name for p in f.parent.iterdir()] == ["tokenizer.json"]


def test_load_missing_or_corrupt(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no tokenizer at"):
        load_tokenizer(tmp_path)
    with pytest.raises(ArtifactError, match="no tokenizer at"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"not a valid tokenizer\.json") as e:
        load_tokenizer(tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / "tokenizer.json").write_text('{"model": 3}', encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"not a valid tokenizer\.json"):
        load_tokenizer(tmp_path)


def test_eot_id_missing() -> None:
    from tokenizers import models

    tok = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
    with pytest.raises(InputError, match="no <\\|endoftext\\|> token"):
        eot_id(tok)
