"""Shared fixtures for the data-layer tests: small texts and a small trained tokenizer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tokenizers import Tokenizer

from lenscope.data.corpus import Document
from lenscope.data.tokenizer import train_bpe

CODE_SAMPLES = [
    'def greet(name: str) -> str:\n    """Say hello — to anyone."""\n    return f"héllo, {name} ✓"\n',
    "# 日本語のコメント\nπ = 3.14159\nclass Ünïcode:\n    emoji = '🐍🚀'\n\tpass\r\n",
    "import os\n\nfor i in range(10):\n    print(i ** 2, os.sep)  # ÄÖÜ ß\n",
    "Plain English prose, with punctuation; and numbers 1234567890.\n\n  Indented   spaces.",
]


def _make_docs(n: int) -> list[Document]:
    return [
        Document(
            f"doc{i:04d}.py", f"{CODE_SAMPLES[i % len(CODE_SAMPLES)]}x_{i} = {i * 7}  # №{i}\n"
        )
        for i in range(n)
    ]


@pytest.fixture(scope="session")
def code_samples() -> list[str]:
    """Short code-like texts with unicode, tabs and CRLF."""
    return list(CODE_SAMPLES)


@pytest.fixture(scope="session")
def make_docs() -> Callable[[int], list[Document]]:
    """A factory of `n` small, distinct documents named doc0000.py, doc0001.py, ..."""
    return _make_docs


@pytest.fixture(scope="session")
def small_tokenizer() -> Tokenizer:
    """A byte-level BPE tokenizer (vocab <= 400) trained on the samples."""
    return train_bpe(CODE_SAMPLES * 10 + [d.text for d in _make_docs(50)], vocab_size=400)
