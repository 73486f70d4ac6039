"""`lenscope lens`: JSON equals the library's result, pictures are written, mistakes are one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lenscope import load_model, save_model
from lenscope.cli.main import app
from lenscope.errors import InputError, LenscopeError
from lenscope.lens import evaluate_lenses, lens_generation, load_tuned_lens
from tests.lens.fixtures import TEXT, tiny

runner = CliRunner()


@pytest.fixture(autouse=True)
def _one_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LENSCOPE_HOME", str(tmp_path / "home"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("m") / "tinybpe"
    save_model(tiny("gpt2", tokenizer=True, scale=3.0), d)
    return d


def _run(*args: str) -> dict:  # type: ignore[type-arg]
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, (r.output, r.exception)
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_generate_watch_json_equals_the_library(model_dir: Path, tmp_path: Path) -> None:
    out = _run(
        "lens",
        str(model_dir),
        "The keys to the",
        "--generate",
        "4",
        "--watch",
        " is",
        " are",
        "Xq",
        "--json",
        "--out",
        str(tmp_path),
    )
    ref = lens_generation(load_model(model_dir), "The keys to the", 4, watch=[" is", " are", "Xq"])
    assert out["generated_ids"] == ref.generated_ids
    assert out["rankings"] == ref.rankings
    assert out["rankings_watch"]["rank"] == ref.rankings_watch.rank
    assert out["rankings_watch"]["texts"] == [" is", " are", "Xq"]
    assert [p["ids"] for p in out["layer_predictions"]] == [p.ids for p in ref.layer_predictions]
    assert out["lens"]["boundaries"] == ["embed", "L0.post", "L1.post", "L2.post"]
    assert out["notes"] and "'Xq'" in out["notes"][0]
    files = [Path(f) for f in out["files"]]
    stems = {f.stem for f in files}
    assert {
        "rankings",
        "rank",
        "prob",
        "entropy",
        "kl",
        "layer_predictions",
        "rankings_watch",
    } <= stems
    assert all(f.is_file() and f.stat().st_size > 0 for f in files)
    html = (tmp_path / "lens.html").read_text()
    assert "<script" not in html and "http" not in html


def test_table_output_explains_multi_token_watch(model_dir: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["lens", str(model_dir), "The keys", "-w", "Xq", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "note:" in r.stdout and "watching its first token" in r.stdout
    assert "top tokens after" in r.stdout and "wrote" in r.stdout


def test_tables_quote_tokens_so_whitespace_shows(model_dir: Path, tmp_path: Path) -> None:
    """' i' and 'i' are two tokens: the tables must not print both as `i`."""
    r = runner.invoke(
        app,
        [
            "lens",
            str(model_dir),
            "for i in",
            "-n",
            "2",
            "-w",
            " i",
            "-w",
            "i",
            "--out",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 0, r.output
    ref = lens_generation(load_model(model_dir), "for i in", 2, watch=[" i", "i"])
    lines = r.stdout.splitlines()
    header = next(line for line in lines if "' i'" in line and "'i'" in line)
    assert header.index("' i'") < header.index("'i'")  # the watched columns, in order
    after = ref.lens.tokens[ref.position]
    assert f"top tokens after '{after}' (position {ref.position})" in r.stdout
    top = ref.layer_predictions[-1]
    first_row = next(line for line in lines if line.startswith("│ L2.post"))  # top tokens table
    assert f"'{top.tokens[0]}' {top.probs[0]:.1%}" in first_row
    generated = next(line for line in lines if "┃ layer" in line and "#1" not in line)
    assert all(f"'{g}'" in generated for g in ref.generated)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("-p", "99"), "position 99 is out of range"),
        (("--generate", "60"), "exceed"),
        ((" is",), "unexpected argument"),
        (("-w", ""), "no token at all"),
        (("--sublayers", "--tuned", "auto"), "no tuned lens"),
        (("--generate", "3", "--top-k", "2"), "--top-k samples; it needs --temperature > 0"),
    ],
)
def test_bad_input_raises_a_user_error(model_dir: Path, args: tuple[str, ...], needle: str) -> None:
    r = runner.invoke(app, ["lens", str(model_dir), "The keys", *args])
    assert isinstance(r.exception, InputError) and needle in str(r.exception)


def test_empty_prompt_is_refused_like_run(model_dir: Path) -> None:
    r = runner.invoke(app, ["lens", str(model_dir), ""])
    assert isinstance(r.exception, InputError)
    assert str(r.exception) == "the prompt is empty: give some text"


def test_top_k_samples_with_a_temperature(model_dir: Path, tmp_path: Path) -> None:
    args = ["lens", str(model_dir), "The keys", "-n", "3", "--json", "--out", str(tmp_path)]
    out = _run(*args, "--temperature", "1", "--top-k", "2", "--seed", "5")
    ref = lens_generation(load_model(model_dir), "The keys", 3, temperature=1, top_k=2, seed=5)
    assert out["generated_ids"] == ref.generated_ids


def test_user_mistake_is_one_red_line(model_dir: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "lenscope.cli.main", "lens", str(model_dir), "ab", "-p", "7"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "position 7 is out of range" in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2


def test_train_then_eval_tuned(model_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(6):
        (corpus / f"d{i}.txt").write_text(TEXT * (i + 2))
    dest = tmp_path / "lens"
    out = _run(
        "lens",
        "train-tuned",
        str(model_dir),
        "--corpus",
        str(corpus),
        "--steps",
        "6",
        "--ctx",
        "16",
        "--dest",
        str(dest),
        "--eval-batches",
        "2",
        "--out",
        str(tmp_path / "plots"),
        "--json",
    )
    assert Path(out["artifact"]) == dest
    assert json.loads((dest / "manifest.json").read_text())["kind"] == "tuned_lens"
    assert out["training"]["steps"] == 6 and len(out["eval"]["tuned"]["kl"]) == 4
    assert all(Path(f).is_file() for f in out["files"])

    ev = _run(
        "lens",
        "eval-tuned",
        str(model_dir),
        "--tuned",
        str(dest),
        "--corpus",
        str(corpus),
        "--batches",
        "2",
        "--ctx",
        "16",
        "--out",
        str(tmp_path / "plots"),
        "--json",
    )
    m = load_model(model_dir)
    from lenscope.data import token_stream

    data = token_stream(m, [str(corpus)])
    ref = evaluate_lenses(m, data.val, load_tuned_lens(dest, m), ctx=16, max_batches=2)
    assert ev["eval"]["tuned"]["kl"] == pytest.approx(ref.tuned.kl if ref.tuned else [])
    assert ev["eval"]["logit"]["ce"] == pytest.approx(ref.logit.ce)
    shown = _run(
        "lens",
        str(model_dir),
        "The keys",
        "--tuned",
        str(dest),
        "--json",
        "--out",
        str(tmp_path / "shown"),
    )
    assert shown["lens"]["lens"] == "tuned"


def test_help_lists_the_subcommands() -> None:
    r = runner.invoke(app, ["lens", "--help"])
    assert r.exit_code == 0
    assert "train-tuned" in r.stdout and "eval-tuned" in r.stdout


def test_bare_tuned_uses_the_shipped_mini_lens(tmp_path: Path) -> None:
    from lenscope.lens import logit_lens

    out = _run("lens", "mini", "def f(x):", "--tuned", "--json", "--out", str(tmp_path))
    named = _run(
        "lens", "mini", "def f(x):", "--tuned", "mini-tuned", "--json", "--out", str(tmp_path)
    )
    # a bare --tuned before the prompt does not swallow it
    before = _run("lens", "mini", "--tuned", "def f(x):", "--json", "--out", str(tmp_path))
    m = load_model("mini")
    ref = logit_lens(m, "def f(x):", tuned=load_tuned_lens("mini-tuned", m))
    for got in (out, named, before):
        assert got["lens"]["lens"] == "tuned"
        assert got["lens"]["top_ids"] == ref.top_ids.tolist()


def test_precision_bf16_is_recorded_and_checked(model_dir: Path, tmp_path: Path) -> None:
    out = _run(
        "lens", str(model_dir), "The keys", "--precision", "bf16", "--json", "--out", str(tmp_path)
    )
    assert out["lens"]["precision"] == "bf16"
    r = runner.invoke(app, ["lens", str(model_dir), "The keys", "--precision", "fp8"])
    assert isinstance(r.exception, InputError) and "precision must be one of" in str(r.exception)


def test_auto_picks_the_first_lens_made_for_the_model(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lens you trained comes before a shipped one of its name; one made for another model is
    passed over by `--tuned` alone and refused by name."""
    from lenscope.lens import TunedLens, save_tuned_lens
    from lenscope.lens.tuned import find_tuned_lens, trained_lenses_dir

    m = load_model(model_dir)
    name = f"{m.cfg.name}-tuned"
    monkeypatch.setenv("LENSCOPE_ASSETS", str(tmp_path / "assets"))
    other = tiny("gpt2", tokenizer=True, seed=9)
    save_tuned_lens(TunedLens.for_model(other), tmp_path / "assets" / "lenses" / name, name)
    assert find_tuned_lens(m) is None
    r = runner.invoke(app, ["lens", str(model_dir), "ab", "--tuned"])
    assert isinstance(r.exception, InputError) and "no tuned lens for" in str(r.exception)
    mine = save_tuned_lens(TunedLens.for_model(m), trained_lenses_dir() / name, name)
    assert find_tuned_lens(m) == mine
    out = _run("lens", str(model_dir), "ab", "--tuned", "--json", "--out", str(tmp_path / "o"))
    assert out["lens"]["lens"] == "tuned"
    # a bare name resolves trained first (as models and SAEs do)
    args = ["lens", str(model_dir), "ab", "--tuned", name, "--out", str(tmp_path / "o")]
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["lens"]["lens"] == "tuned"
    # without it the name is the shipped lens, made for the other model: refused clearly
    shutil.rmtree(mine)
    r = runner.invoke(app, args)
    assert isinstance(r.exception, LenscopeError) and "another model" in str(r.exception)


def test_an_over_long_prompt_says_it_is_too_long(model_dir: Path) -> None:
    prompt = "The keys to the cabinet " * 20
    m = load_model(model_dir)
    n = m.to_tokens(prompt).shape[1]
    r = runner.invoke(app, ["lens", str(model_dir), prompt])
    assert isinstance(r.exception, InputError)
    assert f"the prompt is too long for {m.cfg.name}'s context: {n} tokens > n_ctx = 48" in str(
        r.exception
    )
    assert "generate at most" not in str(r.exception)
