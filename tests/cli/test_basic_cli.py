"""The front door: models, run, train; user mistakes are one line and exit code 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lenscope import HookedTransformer, ModelConfig, save_model
from lenscope.model.tokenizer import Tokenizer
from tests.model.hf_fixtures import write_tokenizer


def lenscope(
    *args: str, home: Path | None = None, columns: int | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if home is not None:
        env["LENSCOPE_HOME"] = str(home)
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [sys.executable, "-m", "lenscope.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tok")
    write_tokenizer(d)
    cfg = ModelConfig(n_layers=1, d_model=16, n_heads=2, d_vocab=97, n_ctx=16, name="tiny")
    home = tmp_path_factory.mktemp("home")
    save_model(HookedTransformer(cfg, Tokenizer.from_file(d)), home / "models" / "tiny")
    return home


def test_run_json_matches_library(tiny: Path) -> None:
    import torch

    from lenscope import load_model

    r = lenscope("run", "tiny", "w1 w2 w3", "--json", "-k", "3", home=tiny)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    m = load_model(tiny / "models" / "tiny")
    probs = m("w1 w2 w3")[0, -1].softmax(-1)
    top = probs.topk(3)
    assert [c["id"] for c in out["candidates"]] == top.indices.tolist()
    assert torch.allclose(torch.tensor([c["prob"] for c in out["candidates"]]), top.values)


def test_models_lists_trained(tiny: Path) -> None:
    r = lenscope("models", "--json", home=tiny)
    assert r.returncode == 0, r.stderr
    names = {(e["name"], e["source"]) for e in json.loads(r.stdout)}
    assert ("tiny", "trained") in names


def test_models_marks_a_shipped_model_shadowed_by_a_trained_one(tmp_path: Path) -> None:
    home = tmp_path / "a-rather-long-workspace-directory-name" / "home"
    cfg = ModelConfig(n_layers=1, d_model=16, n_heads=2, d_vocab=97, n_ctx=16, name="mini")
    save_model(HookedTransformer(cfg), home / "models" / "mini")  # as `train --recipe mini` does
    r = lenscope("models", "--json", home=home)
    assert r.returncode == 0, r.stderr
    shadowed = {(e["name"], e["source"]): e["shadowed"] for e in json.loads(r.stdout)}
    assert shadowed[("mini", "shipped")] is True and shadowed[("mini", "trained")] is False
    assert shadowed[("attn1", "shipped")] is False
    r = lenscope("models", home=home, columns=80)
    assert r.returncode == 0, r.stderr
    assert "shipped (shadowed)" in r.stdout
    assert "…" not in r.stdout  # names and paths fold, never cut
    path_column = "".join(
        line.split("│")[-2].strip() for line in r.stdout.splitlines() if line.count("│") == 5
    )
    assert str(home / "models" / "mini") in path_column


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run", "no-such-model", "x"), "no model named 'no-such-model'"),
        (("run", "tiny", ""), "empty"),
        (("run", "tiny", "w1 " * 40), "at most 16"),
        (("run", "tiny", "w1", "-k", "0"), "top_k"),
        (("train", "--recipe", "nope"), "no recipe 'nope'"),
        (("train", "--recipe", "attn1", "--steps", "0"), "steps=0"),
        (("train", "--recipe", "attn1", "--corpus", "/no/such/dir"), "/no/such/dir"),
    ],
)
def test_user_mistakes_are_one_clear_line(tiny: Path, args: tuple[str, ...], needle: str) -> None:
    r = lenscope(*args, home=tiny)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert needle in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2  # one line (rich may wrap a long one)
