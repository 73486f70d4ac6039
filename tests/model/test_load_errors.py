"""Bad large checkpoints: one clear line each, from the library and from `lenscope run`, raised
before the model is built (no weight half-loaded)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lenscope import load_model
from lenscope.errors import (
    CheckpointError,
    InputError,
    LenscopeError,
    UnsupportedArchitectureError,
)
from lenscope.model import load as load_mod
from tests.model.hf_fixtures import make_checkpoint

INDEX = "model.safetensors.index.json"


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("sharded")
    model = make_checkpoint("llama", d)
    (d / "model.safetensors").unlink()
    model.save_pretrained(d, safe_serialization=True, max_shard_size="50KB")
    return d


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _index(d: Path) -> dict[str, str]:
    wmap: dict[str, str] = json.loads((d / INDEX).read_text())["weight_map"]
    return wmap


def missing_shard(d: Path) -> str:
    shard = sorted(set(_index(d).values()))[1]
    (d / shard).unlink()
    return rf"shard {shard} named in {INDEX} is missing"


def truncated_shard(d: Path) -> str:
    shard = sorted(set(_index(d).values()))[-1]
    raw = (d / shard).read_bytes()
    (d / shard).write_bytes(raw[: len(raw) - 100])
    return rf"{shard} is corrupt or truncated"


def garbage_header(d: Path) -> str:
    shard = sorted(set(_index(d).values()))[0]
    (d / shard).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!" + b"\0" * 64)
    return rf"{shard} is corrupt or truncated \(header is not JSON"


def index_names_absent_tensor(d: Path) -> str:
    idx = json.loads((d / INDEX).read_text())
    name, shard = next(iter(idx["weight_map"].items()))
    other = next(s for s in sorted(set(idx["weight_map"].values())) if s != shard)
    idx["weight_map"][name] = other
    (d / INDEX).write_text(json.dumps(idx))
    return rf"puts tensor '{name}' in {other}, which does not hold it"


def unsupported(d: Path) -> str:
    c = json.loads((d / "config.json").read_text())
    c["model_type"], c["architectures"] = "t5", ["T5ForConditionalGeneration"]
    (d / "config.json").write_text(json.dumps(c))
    return r"'t5' is not supported \(T5ForConditionalGeneration\); lenscope converts .*gpt2.*llama"


def float8_weights(d: Path) -> str:
    from safetensors.torch import load_file, save_file

    for f in sorted(d.glob("*.safetensors")):
        save_file({k: v.to(torch.float8_e4m3fn) for k, v in load_file(str(f)).items()}, str(f))
    return r"weights are stored as torch.float8_e4m3fn, which lenscope cannot run"


BREAKERS: dict[str, Callable[[Path], str]] = {
    "missing-shard": missing_shard,
    "truncated-shard": truncated_shard,
    "garbage-header": garbage_header,
    "index-names-absent-tensor": index_names_absent_tensor,
    "unsupported": unsupported,
    "float8": float8_weights,
}


@pytest.fixture(params=sorted(BREAKERS))
def broken(request: pytest.FixtureRequest, sharded: Path, tmp_path: Path) -> tuple[Path, str]:
    d = _copy(sharded, tmp_path / "ckpt")
    return d, BREAKERS[request.param](d)


def test_library_error_before_the_model_is_built(
    broken: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    d, pattern = broken

    def never(*_: object) -> None:
        raise AssertionError("the model was built before the checkpoint was checked")

    monkeypatch.setattr(load_mod, "empty_model", never)
    with pytest.raises((CheckpointError, UnsupportedArchitectureError)) as e:
        load_model(d)
    assert len(str(e.value).splitlines()) == 1
    assert re.search(pattern, str(e.value)), str(e.value)


def test_cli_run_says_one_line(
    broken: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lenscope.cli.main import main

    d, pattern = broken
    monkeypatch.setattr(sys, "argv", ["lenscope", "run", str(d), "w1 w2"])
    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert re.search(pattern, err), err


def test_the_unbroken_sharded_checkpoint_loads(sharded: Path) -> None:
    """The fixture the failures start from is itself fine (so each failure is the breakage)."""
    m = load_model(sharded)
    assert m.cfg.architecture == "llama"


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (dict(dtype=torch.int8), r"lenscope runs models in float32, float16, bfloat16, float64"),
        (dict(device="no-such-device"), r"unknown device 'no-such-device': use cpu \| cuda"),
    ],
)
def test_a_dtype_or_device_that_cannot_run_is_refused(
    sharded: Path, kwargs: dict[str, object], pattern: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(load_mod, "empty_model", lambda *_: pytest.fail("model built"))
    with pytest.raises(InputError, match=pattern):
        load_model(sharded, **kwargs)  # type: ignore[arg-type]


def test_cuda_loads_where_present_and_is_refused_in_one_line_elsewhere(sharded: Path) -> None:
    if torch.cuda.is_available():
        m = load_model(sharded, device="cuda")
        assert all(p.is_cuda for p in m.parameters())
        return
    with pytest.raises(LenscopeError, match=r"device 'cuda' asked for, but torch sees no CUDA GPU"):
        load_model(sharded, device="cuda")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_dtypes_run_on_cpu(sharded: Path, dtype: torch.dtype) -> None:
    """torch runs float16 and bfloat16 on any CPU: nothing to refuse there."""
    load_mod.check_dtype_runs(dtype, "cpu")
    m = load_model(sharded, dtype=dtype)
    with torch.no_grad():
        assert m(torch.tensor([[1, 2, 3]])).isfinite().all()
