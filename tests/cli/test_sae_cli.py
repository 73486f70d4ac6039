"""`lenscope sae ...` end to end on a tiny saved model: train, list, eval, export (loaded by
SAELens), import, an experiment, and a bad input turned into one clear line."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from lenscope.cli.main import app, main
from lenscope.errors import InputError
from lenscope.model import fingerprint, load_model
from lenscope.sae import load_sae
from tests.sae.helpers import tiny_lm_dir, write_text_corpus

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: one torch thread is as fast and immune to crowded machines."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
    tr = _json(
        [
            "sae",
            "train",
            str(model),
            "--hook",
            HOOK,
            "--k",
            "4",
            "--latents",
            "64",
            "--steps",
            "12",
            "--batch-size",
            "128",
            "--ckpt-every",
            "6",
            "--data",
            str(corpus),
            "--json",
        ]
    )
    assert tr["steps"] == 12 and tr["l0"] == 4.0 and tr["resumed_from"] is None
    name = Path(tr["path"]).name
    assert name == "tinylm-L0-resid_post-topk-k4-n64"
    listed = _json(["sae", "list", "--json"])
    trained = [e["name"] for e in listed if e["source"] == "trained"]
    assert trained == [name]
    shipped = {e["name"] for e in listed if e["source"] == "shipped"}
    assert shipped == {p.name for p in (ROOT / "assets" / "saes").iterdir()}
    ev = _json(
        [
            "sae",
            "eval",
            name,
            "--model",
            str(model),
            "--data",
            str(corpus),
            "--tokens",
            "256",
            "--ablations",
            "4",
            "--out",
            str(tmp_path / "plots"),
            "--json",
        ]
    )
    assert 0 < ev["n_tokens"] <= 512 and ev["fvu"] >= 0 and ev["l0"] == 4.0
    assert {Path(p).name for p in ev["plots"]} == {
        "density.png",
        "density.svg",
        "downstream_loss.png",
        "downstream_loss.svg",
    }
    res = runner.invoke(
        app, ["sae", "export", name, "--format", "saelens", "--out", str(tmp_path / "sl")]
    )
    assert res.exit_code == 0, res.output
    from sae_lens import SAE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SAE.load_from_disk(tmp_path / "sl")
    ours = load_sae(name)
    x = torch.randn(10, 32)
    with torch.no_grad():
        torch.testing.assert_close(theirs.encode(x), ours.encode(x), atol=1e-5, rtol=1e-5)
    res = runner.invoke(
        app,
        [
            "sae",
            "import",
            str(tmp_path / "sl"),
            "--out",
            str(tmp_path / "back"),
            "--model",
            str(model),
        ],
    )
    assert res.exit_code == 0, res.output
    back = load_sae(tmp_path / "back")
    assert back.cfg.model_fingerprint == fingerprint(load_model(model))
    torch.testing.assert_close(back(x), ours(x))


def test_experiment_auxk(
    lm: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, corpus = lm
    monkeypatch.setenv("LENSCOPE_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    from lenscope.data import token_stream

    # give the experiment the corpus as the model's data (experiments take the default data)
    monkeypatch.setattr(
        "lenscope.data.token_stream",
        lambda m, data=None, progress=True, log=print: token_stream(
            m, [str(corpus)], progress=False
        ),
    )
    out = _json(
        [
            "sae",
            "experiment",
            "auxk",
            "--model",
            str(model),
            "--hook",
            HOOK,
            "--steps",
            "8",
            "--batch-size",
            "128",
            "--latents",
            "64",
            "--k",
            "4",
            "--blocks",
            "1",
            "--out",
            str(tmp_path / "x"),
            "--json",
        ]
    )
    assert [r["label"] for r in out["runs"]] == ["with AuxK", "without AuxK"]
    assert all(r["l0"] == 4.0 for r in out["runs"])
    assert (tmp_path / "x" / "auxk.png").is_file()


def test_bad_input_is_one_clear_line(
    lm: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _ = lm
    with pytest.raises(InputError, match="k = 100 is larger than the latent count 64"):
        runner.invoke(
            app,
            ["sae", "train", str(model), "--hook", HOOK, "--k", "100", "--latents", "64"],
            catch_exceptions=False,
        )
    monkeypatch.setattr(
        sys, "argv", ["lenscope", "sae", "train", str(model), "--hook", "blocks.7.hook_resid_post"]
    )
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) <= 2 and "no hook point 'blocks.7.hook_resid_post'" in err


def test_list_marks_a_shipped_sae_shadowed_by_a_trained_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lenscope.sae import SAEConfig, SparseAutoencoder, save_sae

    assets, home = tmp_path / "assets", tmp_path / "home"
    monkeypatch.setenv("LENSCOPE_ASSETS", str(assets))
    monkeypatch.setenv("LENSCOPE_HOME", str(home))
    long = "a-rather-long-sae-name-that-would-not-fit-in-a-column-L2-resid_post-topk-k16-n2048"
    for root, d_sae in ((assets, 16), (home, 32)):
        cfg = SAEConfig(d_in=8, d_sae=d_sae, k=2, hook_name=HOOK, model_fingerprint="f" * 16)
        save_sae(SparseAutoencoder(cfg, seed=0), root / "saes" / long)
    res = runner.invoke(app, ["sae", "list"], catch_exceptions=False, env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    assert "(shadowed)" in res.output and "loads instead" in res.output
    assert "…" not in res.output  # names and paths fold; they are never cut
    names = "".join(ln.split("│")[1].strip() for ln in res.output.splitlines() if "│" in ln)
    assert names.count(long) == 2  # the whole name of both, folded over lines
