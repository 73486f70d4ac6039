"""`lenscope transcoder ...` end to end on a tiny saved model: train (and resume), list, eval
(recorded in the manifest), export to circuit-tracer and SAELens, import back, and bad input
turned into one clear line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from lenscope.cli.main import app, main
from lenscope.cli.transcoder import parse_layers
from lenscope.errors import InputError
from lenscope.model import fingerprint, load_model
from lenscope.sae.transcoder_set import load_transcoder_set
from tests.sae.helpers import tiny_lm_dir, write_text_corpus

runner = CliRunner()


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lm")
    corpus = write_text_corpus(root / "corpus")
    return tiny_lm_dir(root / "model", corpus), corpus


def _json(args: list[str]) -> Any:
    res = runner.invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    text = res.stdout
    return json.loads(text[min(i for i in (text.find("{"), text.find("[")) if i >= 0) :])


def test_train_list_eval_export_import(
    lm: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, corpus = lm
    monkeypatch.setenv("LENSCOPE_HOME", str(tmp_path / "home"))
    args = ["transcoder", "train", str(model), "--data", str(corpus), "--k", "4", "--d-sae", "48",
            "--batch-size", "128", "--buffer-tokens", "256", "--ctx", "16", "--name", "tc",
            "--ckpt-every", "3", "--skip", "--json"]  # fmt: skip
    first = runner.invoke(app, [*args, "--steps", "8"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    tr = _json([*args, "--steps", "8"])  # the finished run: resumed at its last step
    assert tr["steps"] == 8 and tr["resumed_from"] == 8
    path = Path(tr["path"])
    assert path == tmp_path / "home" / "transcoders" / "tc"
    m = load_model(model)
    ts = load_transcoder_set("tc", model=m)
    assert ts.layers == [0, 1] and ts.cfg.skip and ts.cfg.model_fingerprint == fingerprint(m)
    listed = _json(["transcoder", "list", "--json"])
    assert [e["name"] for e in listed if e["source"] == "trained"] == ["tc"]
    ev = _json(["transcoder", "eval", "tc", "--model", str(model), "--data", str(corpus), "--tokens", "64", "--record", "--json"])  # fmt: skip
    assert [x["layer"] for x in ev["layers"]] == [0, 1]
    assert ev["ce_zero"] > 0 and ev["loss_recovered"] is not None
    assert load_transcoder_set("tc").metrics["loss_recovered"] == pytest.approx(
        ev["loss_recovered"]
    )
    for fmt in ("circuit-tracer", "saelens"):
        res = runner.invoke(app, ["transcoder", "export", "tc", "--out", str(tmp_path / fmt), "--format", fmt, "--model", str(model)], catch_exceptions=False)  # fmt: skip
        assert res.exit_code == 0, res.output
    assert (tmp_path / "circuit-tracer" / "config.yaml").is_file()
    assert (tmp_path / "saelens" / "layer_1" / "cfg.json").is_file()
    res = runner.invoke(app, ["transcoder", "import", str(tmp_path / "circuit-tracer"), "--out", str(tmp_path / "back"), "--model", str(model)], catch_exceptions=False)  # fmt: skip
    assert res.exit_code == 0, res.output
    back = load_transcoder_set(tmp_path / "back", model=m)
    x = torch.randn(5, 32)
    with torch.no_grad():
        for a, b in zip(ts.transcoders, back.transcoders, strict=True):
            torch.testing.assert_close(b(x), a(x), rtol=1e-5, atol=1e-5)


def test_layers_option() -> None:
    assert parse_layers(None) is None
    assert parse_layers("0,2") == [0, 2]
    assert parse_layers("1-3,0") == [0, 1, 2, 3]
    with pytest.raises(InputError, match="layer numbers"):
        parse_layers("a-b")


def test_bad_input_is_one_clear_line(
    lm: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _ = lm
    monkeypatch.setattr(
        sys, "argv", ["lenscope", "transcoder", "train", str(model), "--layers", "0,7"]
    )
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) <= 2 and "no layer 7" in err
    monkeypatch.setattr(sys, "argv", ["lenscope", "transcoder", "eval", "nope"])
    with pytest.raises(SystemExit):
        main()
    assert "no transcoder set named 'nope'" in capsys.readouterr().err
