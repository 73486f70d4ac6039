"""`lenscope models` lists a fake local Hugging Face cache by family and says why each entry that
cannot load cannot; `lenscope run org/name` on such an entry says the same in one line."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from lenscope.errors import LenscopeError
from lenscope.model.hf import FAMILIES
from lenscope.model.load import list_models, load_model
from tests.model.hf_fixtures import make_checkpoint

SUPPORTED = ", ".join(sorted(FAMILIES))  # every family lenscope converts, named in the reason


def _repo(hub: Path, name: str, files: dict[str, bytes | None] | None = None) -> Path:
    """models--org--name with a blob store, refs/main and one snapshot of symlinks, as the hub
    writes it; a file given as None is a dangling link (its blob never arrived)."""
    repo = hub / ("models--" + name.replace("/", "--"))
    snap = repo / "snapshots" / "c0ffee"
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c0ffee")
    for i, (fname, data) in enumerate((files or {}).items()):
        blob = repo / "blobs" / f"blob{i}"
        if data is not None:
            blob.write_bytes(data)
        (snap / fname).symlink_to(blob)
    return snap


def _files(d: Path) -> dict[str, bytes | None]:
    return {f.name: f.read_bytes() for f in sorted(d.iterdir())}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    hub = tmp_path_factory.mktemp("hub")
    src = tmp_path_factory.mktemp("src")
    make_checkpoint("gpt2", src / "gpt2")
    llama = make_checkpoint("llama", src / "llama")
    (src / "llama" / "model.safetensors").unlink()
    llama.save_pretrained(src / "llama", safe_serialization=True, max_shard_size="50KB")

    _repo(hub, "org/tiny-gpt2", _files(src / "gpt2"))
    _repo(hub, "org/tiny-llama", _files(src / "llama"))
    partial = _files(src / "llama")
    shards = sorted(n for n in partial if n.endswith(".safetensors"))
    partial[shards[1]] = None
    _repo(hub, "org/half-llama", partial)
    cut = _files(src / "gpt2")
    raw = cut["model.safetensors"]
    assert raw is not None
    cut["model.safetensors"] = raw[: len(raw) // 2]
    _repo(hub, "org/cut-gpt2", cut)
    t5 = json.loads((src / "gpt2" / "config.json").read_text())
    t5 |= {"model_type": "t5", "architectures": ["T5ForConditionalGeneration"]}
    _repo(hub, "google/t5-tiny", {"config.json": json.dumps(t5).encode()})
    _repo(hub, "org/no-config", {"README.md": b"# a dataset card\n"})
    gpt2_cfg = (src / "gpt2" / "config.json").read_bytes()
    bin_index = {"weight_map": {"wte.weight": "pytorch_model-00001-of-00001.bin"}}
    _repo(
        hub,
        "org/bin-only",
        {
            "config.json": gpt2_cfg,
            "pytorch_model.bin.index.json": json.dumps(bin_index).encode(),
            "pytorch_model-00001-of-00001.bin": b"pickle",
        },
    )
    busy = _repo(hub, "org/downloading", _files(src / "gpt2"))
    (busy.parents[1] / "blobs" / "abc.incomplete").write_bytes(b"12")
    return hub


@pytest.fixture(autouse=True)
def only_this_cache(hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "400")


def _cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    from lenscope.cli.main import main

    monkeypatch.setattr(sys, "argv", ["lenscope", *args])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


EXPECTED = {
    "org/tiny-gpt2": ("gpt2", ""),
    "org/tiny-llama": ("llama", ""),
    "org/half-llama": ("llama", r"shard model-00002-of-\d+\.safetensors named in .* is missing"),
    "org/cut-gpt2": ("gpt2", r"model\.safetensors is corrupt or truncated"),
    "google/t5-tiny": (
        "t5",
        rf"architecture model_type 't5' is not supported \(T5ForConditionalGeneration\); "
        rf"lenscope converts {re.escape(SUPPORTED)}",
    ),
    "org/no-config": ("?", r"no config\.json"),
    "org/bin-only": ("gpt2", r"no safetensors weights: .*save_pretrained"),
    "org/downloading": ("gpt2", ""),  # its snapshot is whole: loads, with a note
}


def test_list_models_reads_the_cache_by_family_with_reasons() -> None:
    got = {e.name: e for e in list_models() if e.source == "hf-cache"}
    assert set(got) == set(EXPECTED)
    for name, (family, problem) in EXPECTED.items():
        assert got[name].family == family, name
        if problem:
            assert re.search(problem, got[name].problem), (name, got[name].problem)
        else:
            assert got[name].problem == "", (name, got[name].problem)
    assert re.fullmatch(r"0\.\d+M params, float32, \d+ shards", got["org/tiny-llama"].summary)
    assert got["org/tiny-gpt2"].summary.endswith("float32")
    assert "download into this repo is unfinished" in got["org/downloading"].summary
    fams = [e.family for e in list_models() if e.source == "hf-cache"]
    assert fams == sorted(fams)  # grouped by family


def test_every_loadable_entry_loads_and_every_other_fails_with_its_reason() -> None:
    for name, (_, problem) in EXPECTED.items():
        if not problem:
            assert load_model(name).cfg.architecture in ("gpt2", "llama")
            continue
        with pytest.raises(LenscopeError) as e:
            load_model(name)
        assert len(str(e.value).splitlines()) == 1


def test_models_cli_json_and_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(monkeypatch, capsys, "models", "--json")
    assert code == 0, err
    rows: list[dict[str, Any]] = [r for r in json.loads(out) if r["source"] == "hf-cache"]
    assert {r["name"]: r["family"] for r in rows} == {k: v[0] for k, v in EXPECTED.items()}
    assert all(bool(r["problem"]) == bool(EXPECTED[r["name"]][1]) for r in rows)

    code, out, err = _cli(monkeypatch, capsys, "models")
    assert code == 0, err
    assert "local Hugging Face cache, by family" in out
    lines = [ln for ln in out.splitlines() if "org/" in ln or "google/" in ln]
    assert len(lines) == len(EXPECTED)
    t5 = next(ln for ln in lines if "google/t5-tiny" in ln)
    assert "cannot load: architecture model_type 't5' is not supported" in t5
    assert SUPPORTED in t5
    ok = next(ln for ln in lines if "org/tiny-llama" in ln)
    assert "cannot load" not in ok and "shards" in ok
    half = next(ln for ln in lines if "org/half-llama" in ln)
    assert re.search(r"cannot load: shard model-00002-of-\d+\.safetensors", half)


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("org/half-llama", r"shard model-00002-of-\d+\.safetensors named in"),
        ("org/cut-gpt2", r"corrupt or truncated"),
        ("google/t5-tiny", r"'t5' is not supported"),
        ("org/no-config", r"org/no-config is in the local HF cache but cannot load: no config"),
    ],
)
def test_run_on_a_bad_cache_entry_is_one_line(
    name: str, needle: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(monkeypatch, capsys, "run", name, "w1 w2")
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and re.search(needle, err), err
