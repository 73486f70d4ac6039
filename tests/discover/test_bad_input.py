"""Every mistake the issue lists is one clear line, and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lenscope.cli.main import app
from lenscope.discover.api import discover
from lenscope.discover.tasks import list_tasks, load_task
from lenscope.errors import InputError
from lenscope.model.transformer import HookedTransformer

runner = CliRunner()


def _write(tmp_path: Path, rows: list[dict[str, object]], name: str = "t.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p


def _one_line(e: pytest.ExceptionInfo[InputError]) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_task_files(attn2: HookedTransformer, tmp_path: Path) -> None:
    row = {"clean": [1, 2, 3], "corrupted": [1, 5, 3], "answer": 4, "wrong": 6}
    with pytest.raises(InputError) as e:
        load_task(_write(tmp_path, []), attn2)
    assert "has no rows" in _one_line(e)
    with pytest.raises(InputError) as e:
        load_task(_write(tmp_path, [{**row, "answer": " is not one token"}]), attn2)
    assert "exactly one token" in _one_line(e)
    with pytest.raises(InputError) as e:
        load_task(_write(tmp_path, [{**row, "wrong": 10**6}]), attn2)
    assert "outside the vocabulary" in _one_line(e)
    with pytest.raises(InputError) as e:
        load_task(_write(tmp_path, [{"clean": "x"}]), attn2)
    assert "missing corrupted, answer, wrong" in _one_line(e)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_task(bad, attn2)
    assert "line 1 is not JSON" in _one_line(e)
    with pytest.raises(InputError) as e:
        load_task("no-such-task", attn2)
    assert "induction" in _one_line(e)


def test_model_the_task_was_not_written_for(mini: HookedTransformer) -> None:
    with pytest.raises(InputError) as e:
        load_task("induction", mini)
    assert "written for attn2, not mini" in _one_line(e)


def test_resample_needs_aligned_rows(attn2: HookedTransformer, tmp_path: Path) -> None:
    path = _write(tmp_path, [{"clean": [1, 2, 3], "corrupted": [1, 5], "answer": 4, "wrong": 6}])
    task = load_task(path, attn2)
    with pytest.raises(InputError) as e:
        discover(attn2, task, "eap", "resample")
    assert "must be equally long" in _one_line(e)
    discover(attn2, task, "eap", "mean", points=4)  # a mean needs no alignment


def test_ranges(attn2: HookedTransformer) -> None:
    task = load_task("induction", attn2).head(2)
    for kw, text in (
        ({"method": "acdc", "tau": -1.0}, "--tau"),
        ({"method": "acdc", "tau": float("nan")}, "--tau"),
        ({"method": "eap", "top_n": 0}, "--top-n"),
        ({"method": "eap", "top_n": 10**6}, "--top-n"),
        ({"method": "eap-ig", "steps": 0}, "--steps"),
        ({"method": "eap", "tau": 0.1}, "ACDC's threshold"),
        ({"method": "magic"}, "not one of"),
        ({"method": "eap", "ablation": "shuffle"}, "not one of"),
    ):
        args = {"ablation": "resample", **kw}
        with pytest.raises(InputError) as e:
            discover(attn2, task, **args)  # type: ignore[arg-type]
        assert text in _one_line(e)


def test_cli_one_red_line_and_nothing_written(tmp_path: Path) -> None:
    out = tmp_path / "plots"
    for args in (
        ["--task", "induction", "--method", "acdc", "--tau", "-1"],
        ["--task", "brackets"],
    ):
        res = runner.invoke(app, ["discover", "attn2", *args, "--out", str(out)])
        assert res.exit_code != 0
        assert isinstance(res.exception, (InputError, SystemExit)), res.output
        if isinstance(res.exception, InputError):
            assert "\n" not in str(res.exception)
    assert not out.exists()


def test_shipped_tasks_are_listed_per_model() -> None:
    assert [t.name for t in list_tasks("attn2")] == ["induction"]
    assert {t.name for t in list_tasks("mini")} == {"brackets", "self-assign"}
