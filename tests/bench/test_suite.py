"""The bench over several dictionaries: labelled code tokens, resumable per-dictionary results,
bad input as one clear line, and `lenscope sae bench` end to end."""

from __future__ import annotations

import json
import keyword
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from lenscope.bench import BenchConfig, run_bench
from lenscope.bench.codeset import binary_tasks, code_tokens
from lenscope.cli.main import app, main
from lenscope.data.code_labels import KIND
from lenscope.errors import InputError
from lenscope.model import fingerprint, save_model
from lenscope.sae import SparseAutoencoder, save_sae
from lenscope.sae.train import sae_config_for
from tests.bench.helpers import code_stream, tiny_model, tiny_sae, tiny_transcoder

CFG = BenchConfig(core_tokens=64, probe_tokens=1024, ctx=32, batch_size=2, per_class=200)


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return code_stream(tmp_path_factory.mktemp("bench") / "tokens")


def test_code_tokens_label_the_model_tokens_by_what_they_spell(stream: Any) -> None:
    m = tiny_model()
    code = code_tokens(m, stream, n_tokens=1024, ctx=32)
    assert code.windows.shape == (32, 32) and code.documents >= 1
    tok = m.tokenizer
    assert tok is not None
    kinds = code.labels["kind"].reshape(-1)
    ids = code.windows.reshape(-1).tolist()
    seen = set()
    for i, t in enumerate(ids):
        text = tok.decode([t]).strip()
        if kinds[i] == KIND["keyword"]:
            assert keyword.iskeyword(text), text
            seen.add("keyword")
        elif kinds[i] == KIND["name"] and text.isidentifier():
            seen.add("name")
        elif kinds[i] == KIND["number"]:
            assert text[:1].isdigit() or text[:1] == ".", text
        elif t == tok.eos_id:
            assert kinds[i] == -1  # the separator is unlabelled
    assert seen == {"keyword", "name"}
    tasks = binary_tasks(code.labels)
    assert {"kind:keyword", "in_string", "bracket_depth:1", "indent:2", "in_def"} <= set(tasks)
    assert bool(((tasks["in_string"] == 1) == (code.labels["in_string"] == 1)).all())


def test_bench_writes_one_result_per_dictionary_and_resumes(stream: Any, tmp_path: Path) -> None:
    m = tiny_model()
    dics = [("sae-k4", tiny_sae(m)), ("tc", tiny_transcoder(m))]
    first = run_bench(m, dics, stream, tmp_path, CFG)
    assert [d.name for d in first.dictionaries] == ["sae-k4", "tc"] and not first.reused
    assert {p.name for p in tmp_path.glob("*.json")} == {"sae-k4.json", "tc.json"}
    sae, tc = first.dictionaries
    assert (sae.kind, sae.architecture, sae.k) == ("sae", "topk", 4)
    assert (tc.kind, tc.hooks_out) == ("transcoder", ["blocks.1.hook_mlp_out"])
    assert sae.probing is not None and sae.probing.ks == [1, 2, 5]
    assert all(0 <= t.full_accuracy <= 1 for t in sae.probing.tasks)
    # a second run reuses both results, exactly
    again = run_bench(m, dics, stream, tmp_path, CFG)
    assert again.reused == ["sae-k4", "tc"]
    assert [d.to_json() for d in again.dictionaries] == [d.to_json() for d in first.dictionaries]
    # a killed run leaves the finished results: only the missing one is computed again
    (tmp_path / "tc.json").unlink()
    part = run_bench(m, dics, stream, tmp_path, CFG)
    assert part.reused == ["sae-k4"] and part.dictionaries[1].to_json() == tc.to_json()
    # other settings are other results
    other = run_bench(m, dics[:1], stream, tmp_path, BenchConfig(**{**CFG.__dict__, "ks": (1,)}))
    assert not other.reused


def test_bad_input_is_one_clear_error(stream: Any, tmp_path: Path) -> None:
    m = tiny_model()
    with pytest.raises(InputError, match="at least one dictionary"):
        run_bench(m, [], stream, tmp_path, CFG)
    small = SparseAutoencoder(
        sae_config_for(tiny_model(), "blocks.0.hook_resid_post", k=2, d_sae=4)
    )
    with pytest.raises(InputError, match="k = 5 is larger than the dictionary's 4 latents"):
        run_bench(m, [("small", small)], stream, tmp_path, CFG)
    wrong = SparseAutoencoder(
        sae_config_for(m, "blocks.0.hook_resid_post", k=2, d_sae=16).with_(d_in=24)
    )
    with pytest.raises(InputError, match=r"^wrong: the SAE reads d_in = 24 but"):
        run_bench(m, [("wrong", wrong)], stream, tmp_path, CFG)


def test_cli_bench_table_json_and_one_line_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LENSCOPE_HOME", str(tmp_path / "home"))
    m = tiny_model()
    save_model(m, tmp_path / "model")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for d in code_stream(tmp_path / "tok").dataset.documents().to_pylist():  # type: ignore[union-attr]
        if d["name"].endswith(".py"):
            (corpus / d["name"]).write_text(m.tokenizer.decode(_doc(tmp_path / "tok", d)))  # type: ignore[union-attr]
    sae = tiny_sae(m)
    sae.cfg = sae.cfg.with_(model_fingerprint=fingerprint(m))
    save_sae(sae, tmp_path / "sae")
    args = ["sae", "bench", str(tmp_path / "sae"), "--model", str(tmp_path / "model")]
    args += ["--data", str(corpus), "--tokens", "64", "--probe-tokens", "1024", "--ctx", "32"]
    args += ["--out", str(tmp_path / "out")]
    res = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{") :])
    (d,) = out["dictionaries"]
    assert d["architecture"] == "topk" and d["core"]["l0"] <= 4
    assert any(p.endswith("frontier.png") for p in out["plots"])
    table = CliRunner().invoke(app, args, catch_exceptions=False)
    assert "CE score" in table.stdout and "reused earlier results" in table.stdout
    monkeypatch.setattr(sys, "argv", ["lenscope", "sae", "bench"])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "at least one SAE or transcoder" in err


def _doc(dest: Path, d: dict[str, Any]) -> list[int]:
    from lenscope.data.tokens import TokenDataset

    ds = TokenDataset.open(dest)
    return [int(t) for t in ds.split(d["split"])[d["offset"] : d["offset"] + d["tokens"]]]


def test_sae_and_transcoder_probes_read_the_hook_they_encode(stream: Any) -> None:
    from lenscope.bench.suite import probe_inputs
    from lenscope.model.capture import capture
    from lenscope.sae.dictionary import Dictionary

    m = tiny_model()
    code = code_tokens(m, stream, n_tokens=128, ctx=32)
    dic = Dictionary.of(tiny_transcoder(m))
    x, y, lats = probe_inputs(m, dic, code, batch_size=3)
    want = capture(m, code.windows, dic.hook_in).reshape(-1, 32)
    torch.testing.assert_close(x, want)
    torch.testing.assert_close(y, capture(m, code.windows, dic.hooks_out[0]).reshape(-1, 32))
    torch.testing.assert_close(lats, dic.latents(want))
