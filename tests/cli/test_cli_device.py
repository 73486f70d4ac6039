"""`--device` and `--dtype` on the command line: every command that loads a model or dictionary
takes `--device`; `lenscope run --dtype` converts; a device or dtype that cannot run is one line
and exit code 1, before anything loads."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
import torch
import typer.main

from lenscope.cli.main import app, main

LOADING_COMMANDS = [
    ["run"],
    ["why"],
    ["lens", "show"],
    ["lens", "train-tuned"],
    ["lens", "eval-tuned"],
    ["circuits"],
    ["markov"],
    ["sae", "train"],
    ["sae", "eval"],
    ["sae", "import"],
    ["sae", "cache"],
    ["sae", "experiment"],
    ["harvest"],
    ["show"],
    ["serve"],
    ["train"],
    ["demo"],
]


def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setattr(sys, "argv", ["lenscope", *args])
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture(scope="module")
def root() -> Any:
    return typer.main.get_command(app)


@pytest.mark.parametrize("path", LOADING_COMMANDS, ids=" ".join)
def test_every_loading_command_takes_device(root: Any, path: list[str]) -> None:
    group = root
    for name in path:
        group = group.commands[name]
    opts = {o for p in group.params for o in getattr(p, "opts", [])}
    assert "--device" in opts


def test_run_in_bfloat16_is_close_to_float32(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    results = {}
    for dtype in ("float32", "bfloat16"):
        code, out, err = cli(
            capsys, monkeypatch, "run", "mini", "def f(a, b", "--dtype", dtype, "--json"
        )
        assert code in (0, None), err
        results[dtype] = json.loads(out)
    f32, bf16 = (results[k]["candidates"] for k in ("float32", "bfloat16"))
    assert f32[0]["token"] == bf16[0]["token"]
    assert abs(f32[0]["logit"] - bf16[0]["logit"]) < 0.5  # bf16 has 8 bits of mantissa
    assert f32[0]["logit"] != bf16[0]["logit"]  # and it did run in bf16


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--dtype", "int8"], "unknown dtype 'int8'"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--device", "cuda:7"], "cuda:7"),
    ],
)
def test_a_device_or_dtype_that_cannot_run_is_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    says: str,
) -> None:
    if args[-1] == "cuda:7" and torch.cuda.device_count() > 7:
        args = ["--device", f"cuda:{torch.cuda.device_count()}"]
        says = args[-1]
    code, out, err = cli(capsys, monkeypatch, "run", "mini", "x = 1", *args)
    assert code == 1 and out == ""
    assert says in err and err.strip().count("\n") == 0 and "Traceback" not in err


def test_cuda_is_refused_in_one_line_without_a_gpu_and_runs_with_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = cli(capsys, monkeypatch, "run", "mini", "x = 1", "--device", "cuda", "--json")
    if torch.cuda.is_available():
        assert code in (0, None) and json.loads(out)["candidates"], err
    else:
        assert code == 1 and "no CUDA GPU" in err and err.strip().count("\n") == 0
