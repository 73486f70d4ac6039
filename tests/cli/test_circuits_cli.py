"""`lenscope circuits MODEL` and `lenscope circuits induction` through the Typer app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lenscope import save_model
from lenscope.circuits.heads import find_induction_circuit
from lenscope.cli.main import app
from lenscope.errors import InputError, LenscopeError
from tests.circuits.models import induction_model
from tests.circuits.test_phase import make_runs, repeated_stream

runner = CliRunner()


@pytest.fixture(scope="module")
def handmade(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("models") / "handmade"
    save_model(induction_model(), d)
    return d


def test_report_json_finds_the_circuit_and_writes_pictures(handmade: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, ["circuits", str(handmade), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    expected = find_induction_circuit(induction_model())
    assert [h["head"] for h in data["induction"]["induction_heads"]] == ["L1.H0"]
    (pair,) = data["induction"]["pairs"]
    assert pair["previous_token_head"] == "L0.H0"
    assert pair["k_composition"] == pytest.approx(expected.pairs[0].k_composition)
    k_pairs = data["composition"]["K"]["pairs"]
    assert (k_pairs[0]["source"], k_pairs[0]["target"]) == ("L0.H0", "L1.H0")
    assert set(data["copying"]) == {"L0.H0", "L0.H1", "L1.H0", "L1.H1"}
    assert data["layernorm"].startswith("no normalisation")
    kinds = [(t["kind"], t["head"]) for t in data["tables"]]
    assert kinds == [("bigram", None), ("ov", "L1.H0"), ("qk", "L1.H0")]
    names = sorted(Path(f).name for f in data["files"])
    assert names == sorted(
        f"{s}.{e}" for s in ("composition", "attention", "tables") for e in ("png", "svg")
    )
    assert all(Path(f).stat().st_size > 0 for f in data["files"])


def test_report_text_tables_tokens_and_paths(handmade: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "circuits", str(handmade), "--out", str(tmp_path),
            "--token", "5", "--k", "2", "--prompt", "7 8 9 7 8",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert "induction heads" in text and "L1.H0" in text
    assert "L0.H0 (prev-token" in text and "K-composition" in text
    assert "LayerNorm: no normalisation" in text
    # the OV circuit of the induction head copies: token 5 boosts 5 most
    ov_block = text.split("L1.H0 OV")[1]
    assert "'5': '5' +" in ov_block
    assert "path expansion" in text and "sum error" in text
    with torch.no_grad():  # the expanded logit is named: the model's own top token there
        top = int(induction_model()(torch.tensor([[7, 8, 9, 7, 8]]))[0, -1].argmax())
    assert f"top logit, '{top}' (id {top};" in " ".join(text.split())
    res = runner.invoke(app, ["circuits", str(handmade), "--token", "x", "--out", str(tmp_path)])
    assert isinstance(res.exception, InputError) and "token ids" in str(res.exception)


def test_each_model_writes_its_own_folder_and_stale_pictures_go(
    handmade: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = save_model(induction_model(two_layers=False), tmp_path / "onelayer")
    monkeypatch.chdir(tmp_path)
    for model in (handmade, one):
        res = runner.invoke(app, ["circuits", str(model)])
        assert res.exit_code == 0, res.output
    two_dir, one_dir = (
        tmp_path / "lenscope-out" / "circuits" / n for n in ("handmade", "onelayer")
    )
    assert {p.stem for p in two_dir.iterdir()} == {"composition", "attention", "tables"}
    assert {p.stem for p in one_dir.iterdir()} == {
        "attention",
        "tables",
    }  # one layer: no composition
    assert f"wrote {one_dir.relative_to(tmp_path) / 'tables.png'}" in " ".join(res.stdout.split())
    # the one-layer model written where the two-layer one was: its composition heatmap goes
    res = runner.invoke(app, ["circuits", str(one), "--out", str(two_dir), "--json"])
    assert res.exit_code == 0, res.output
    removed = json.loads(res.stdout)["removed"]
    assert sorted(Path(f).name for f in removed) == ["composition.png", "composition.svg"]
    assert {p.stem for p in two_dir.iterdir()} == {"attention", "tables"}


def test_empty_prompt_is_refused_like_run(handmade: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["circuits", str(handmade), "--prompt", "", "--out", str(tmp_path)])
    assert isinstance(res.exception, InputError)
    assert str(res.exception) == "the prompt is empty: give some text"


def test_induction_plot_from_snapshots(tmp_path: Path) -> None:
    make_runs(tmp_path / "runs")
    ids = tmp_path / "ids.npy"
    np.save(ids, repeated_stream())
    out = tmp_path / "out"
    args = ["circuits", "induction", "--runs", str(tmp_path / "runs"), "--data", str(ids)]
    res = runner.invoke(app, [*args, "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [c["recipe"] for c in data["curves"]] == ["attn1", "attn2"]
    two = data["curves"][1]["points"]
    assert two[1]["induction_head"] == "L1.H0" and two[1]["induction_score"] > 0.5
    assert sorted(Path(f).name for f in data["files"]) == ["phase_change.png", "phase_change.svg"]
    res = runner.invoke(app, [*args, "--out", str(out), "--recipes", "attn2"])
    assert res.exit_code == 0 and "attn2" in res.stdout and "phase_change.png" in res.stdout
    n = len(list((tmp_path / "runs" / "attn2" / "snapshots").iterdir()))
    said = " ".join(res.stderr.split())  # before the work starts, even without a terminal
    assert f"induction phase change: measuring attn2 on your {n} snapshots in" in said


def test_missing_snapshots_is_one_clear_line(tmp_path: Path) -> None:
    res = runner.invoke(app, ["circuits", "induction", "--runs", str(tmp_path)])
    assert isinstance(res.exception, LenscopeError)
    assert "lenscope train --recipe attn1" in str(res.exception)
    env = dict(os.environ, LENSCOPE_HOME=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-c", "from lenscope.cli.main import main; main()", "circuits",
         "induction", "--recipes", "attn2", "--runs", str(tmp_path / "runs")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert "run `lenscope train --recipe attn2` first" in " ".join(lines)
    assert "Traceback" not in proc.stderr
    # without --runs and without local snapshots: the shipped curves, said to be shipped
    proc = subprocess.run(
        [sys.executable, "-c", "from lenscope.cli.main import main; main()", "circuits",
         "induction", "--recipes", "attn2", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    said = " ".join(proc.stderr.split())
    assert "curves shipped in" in said
    assert said.startswith("induction phase change: drawing the shipped curves of attn2")
    assert (tmp_path / "out" / "phase_change.png").stat().st_size > 0
