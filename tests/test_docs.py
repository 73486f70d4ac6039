"""Every ```python block of README.md and docs/*.md runs as written, in a fresh LENSCOPE_HOME:
a doc's blocks in order in one namespace, as a reader would paste them into one notebook.

Three blocks name things a test machine does not have or would take minutes to make (a GPT-2
checkpoint of the user's, a harvest of a million tokens, 1,000 SAE training steps). SUBSTITUTE
replaces exact strings in those blocks; each string must still be in its doc, so a doc edit
fails here first instead of going untested.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.model.hf_fixtures import make_checkpoint, write_tokenizer

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)

SUBSTITUTE: dict[str, list[tuple[str, str]]] = {
    "README.md": [('"/path/to/gpt2"', "_GPT2_DIR")],
    "docs/records.md": [
        ("HarvestConfig(n_tokens=1 << 20)", "HarvestConfig(n_tokens=1 << 12), corpus=_CORPUS")
    ],
    "docs/sae.md": [("TrainConfig(steps=1000)", "TrainConfig(steps=3), tokens=_CORPUS")],
}


def _blocks() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in DOCS:
        blocks = [m.group(1) for m in FENCE.finditer(path.read_text())]
        if blocks:
            out[str(path.relative_to(ROOT))] = blocks
    return out


BLOCKS = _blocks()


def test_every_doc_has_its_blocks_found() -> None:
    assert set(BLOCKS) >= {"README.md", "docs/model.md", "docs/lens.md", "docs/sae.md"}
    for rel, subs in SUBSTITUTE.items():
        code = "".join(BLOCKS[rel])
        for old, _ in subs:
            assert old in code, f"{rel} no longer says {old!r}: update SUBSTITUTE"


@pytest.mark.parametrize("rel", list(BLOCKS))
def test_doc_blocks_run(rel: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LENSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {"__name__": "doc"}
    n = torch.get_num_threads()
    try:
        for i, code in enumerate(BLOCKS[rel]):
            for old, new in SUBSTITUTE.get(rel, []):
                code = code.replace(old, new)
            if "_GPT2_DIR" in code and "_GPT2_DIR" not in scope:
                gpt2 = tmp_path / "gpt2"
                make_checkpoint("gpt2", gpt2)
                write_tokenizer(gpt2)
                scope["_GPT2_DIR"] = str(gpt2)
            if "_CORPUS" in code:
                rng = np.random.default_rng(0)
                scope["_CORPUS"] = rng.integers(0, 4096, 1 << 15).astype(np.uint16)
            exec(compile(code, f"{rel}[{i}]", "exec"), scope)
    finally:
        torch.set_num_threads(n)
