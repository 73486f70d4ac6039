"""`lenscope why`: tokenization, node table, token view, ablation, tracing and attention from the
command line, as tables and as JSON checked against the model's own forward pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from lenscope import load_model, save_model
from lenscope.cli.main import app
from lenscope.errors import InputError
from tests.attribution.factory import tokenized_model

PROMPT = "w1 w2 w3 w4 w5"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("why")
    return save_model(tokenized_model(d / "tok"), d / "model")


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["why", *args], catch_exceptions=True)


def as_json(*args: str) -> dict[str, Any]:
    res = run(*args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def last_logits(model_dir: Path, text: str, hooks: list[Any] | None = None) -> torch.Tensor:
    model = load_model(model_dir)
    with torch.no_grad():
        return model.run_with_hooks(model.to_tokens(text), fwd_hooks=hooks or [])[0, -1]


def test_tables_show_tokenization_candidates_nodes_and_tokens(model_dir: Path) -> None:
    res = run(str(model_dir), PROMPT, "--target", " w6", "--distractor", " w7", "--measure", "2")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "target ' w6' → id 8 'w6'" in out
    assert "distractor ' w7' → id 9 'w7'" in out
    for part in ("top next tokens", "components", "nodes at a position", "token view", "L1.H"):
        assert part in out


def test_json_value_is_the_models_logit_difference(model_dir: Path) -> None:
    r = as_json(str(model_dir), PROMPT, "-t", " w6", "-d", " w7")["result"]
    logits = last_logits(model_dir, PROMPT)
    assert r["value"] == pytest.approx(float(logits[8] - logits[9]), abs=1e-5)
    assert r["table"]["direct_total"] == pytest.approx(r["value"], abs=1e-4)
    assert [t.strip() for t in r["prompt"]["tokens"][1:]] == PROMPT.split()
    assert r["tokens"][0]["position"] == 0 and len(r["tokens"]) == 6


def test_default_question_is_top_prediction_against_runner_up(model_dir: Path) -> None:
    r = as_json(str(model_dir), PROMPT, "--measure", "0")["result"]
    top2 = last_logits(model_dir, PROMPT).topk(2).indices.tolist()
    assert [r["targets"][0]["id"], r["distractors"][0]["id"]] == top2
    assert r["value"] > 0


def test_ablate_trace_and_attention(model_dir: Path) -> None:
    rep = as_json(
        str(model_dir), PROMPT, "-t", " w6", "-d", " w7", "--ablate", "L1.H2", "--measure", "0"
    )

    def zero(x: torch.Tensor, hook: Any) -> torch.Tensor:
        x = x.clone()
        x[:, :, 2] = 0
        return x

    clean, cut = (
        last_logits(model_dir, PROMPT),
        last_logits(model_dir, PROMPT, [("blocks.1.attn.hook_z", zero)]),
    )
    assert rep["baseline_value"] == pytest.approx(float(clean[8] - clean[9]), abs=1e-5)
    assert rep["result"]["value"] == pytest.approx(float(cut[8] - cut[9]), abs=1e-5)
    rep = as_json(
        str(model_dir), PROMPT, "--trace", "L1.H0:k", "--trace", "L0.H1", "--measure", "0"
    )
    assert rep["trace"]["node"] == "L0.H1"
    assert [h["via"] for h in rep["trace"]["path"]] == ["k", None]
    rep = as_json(str(model_dir), PROMPT, "--attention", "L1.H2:last:3", "--measure", "0")
    model = load_model(model_dir)
    with torch.no_grad():
        _, cache = model.run_with_cache(model.to_tokens(PROMPT))
    assert rep["attention"]["score"] == pytest.approx(
        float(cache["attn_scores", 1][0, 2, 5, 3]), abs=1e-5
    )
    assert rep["attention"]["query_total"] == pytest.approx(rep["attention"]["score"], abs=1e-4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-t", " zebra", "-d", " w7"], "not in the vocabulary"),
        (["-t", " w6", "-d", " w6"], "both a target and a distractor"),
        (["--ablate", "L1.Q2"], "unknown node id"),
        (["--attention", "1.2.3"], "expected L.H:q:k"),
        (["--position", "30", "-t", " w6"], "beyond the prompt"),
        (["--trace", "L1.H0:x"], "a head's input suffix is :q, :k or :v (like L1.H0:k), not :x"),
        (["--trace", "L1.Q0"], "--trace: unknown node id"),
    ],
)
def test_bad_input_is_an_input_error(model_dir: Path, args: list[str], message: str) -> None:
    res = run(str(model_dir), PROMPT, *args)
    assert res.exit_code != 0
    assert isinstance(res.exception, InputError)
    assert message in str(res.exception) and "\n" not in str(res.exception)


def test_empty_prompt_is_refused_like_run(model_dir: Path) -> None:
    res = run(str(model_dir), "")
    assert isinstance(res.exception, InputError)
    assert str(res.exception) == "the prompt is empty: give some text"


def test_the_command_prints_one_red_line_and_exits_1(model_dir: Path) -> None:
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "lenscope.cli.main",
            "why",
            str(model_dir),
            PROMPT,
            "--ablate",
            "L9.H0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1
    assert p.stderr.strip().startswith("error:") and "layer 9 does not exist" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_sae_latents_become_nodes(model_dir: Path, tmp_path: Path) -> None:
    import lenscope.sae as sae_mod

    cfg = sae_mod.SAEConfig(d_in=32, d_sae=40, k=4, hook_name="blocks.0.hook_resid_post")
    path = sae_mod.save_sae(sae_mod.SparseAutoencoder(cfg, seed=3), tmp_path / "sae")
    r = as_json(str(model_dir), PROMPT, "-t", " w6", "-d", " w7", "--sae", str(path), "--top", "40")
    result = r["result"]
    assert result["sae_hooks"] == ["blocks.0.hook_resid_post"]
    latents = [row for row in result["table"]["rows"] if row["kind"] == "latent"]
    assert latents and all(row["component"].startswith("L0.resid_post.F") for row in latents)
    logits = last_logits(model_dir, PROMPT)
    assert result["value"] == pytest.approx(float(logits[8] - logits[9]), abs=1e-5)


def test_steer_and_patch_equal_hand_written_hooks(model_dir: Path, tmp_path: Path) -> None:
    from lenscope.sae import SAEConfig, SparseAutoencoder, save_sae

    hook = "blocks.0.hook_resid_post"
    sae = SparseAutoencoder(SAEConfig(d_in=32, d_sae=40, k=4, hook_name=hook), seed=3)
    path = save_sae(sae, tmp_path / "sae")
    args = [str(model_dir), PROMPT, "-t", " w6", "-d", " w7", "--sae", str(path), "--measure", "0"]
    direction = sae.W_dec[7].detach()

    def steer(a: torch.Tensor, hook: Any) -> torch.Tensor:
        a = a.clone()
        a[:, 2] += 3.5 * direction
        return a

    r = as_json(*args, "--steer", "L0.resid_post.F7=3.5@2")
    logits = last_logits(model_dir, PROMPT, [(hook, steer)])
    assert r["result"]["value"] == pytest.approx(float(logits[8] - logits[9]), abs=1e-5)
    assert r["baseline_value"] != pytest.approx(r["result"]["value"], abs=1e-4)

    source = "w1 w2 w7 w4 w5"
    model = load_model(model_dir)
    with torch.no_grad():
        _, cache = model.run_with_cache(model.to_tokens(source), names_filter=hook)

    def patch(a: torch.Tensor, hook: Any) -> torch.Tensor:
        a = a.clone()
        a[:, 3] = cache[hook.name][:, 3]
        return a

    r = as_json(*args, "--patch", f"{hook}@3", "--source", source)
    logits = last_logits(model_dir, PROMPT, [(hook, patch)])
    assert r["result"]["value"] == pytest.approx(float(logits[8] - logits[9]), abs=1e-5)

    # the tables say what was done: hook, positions, source / latent, coefficient
    res = run(*args, "--patch", f"{hook}@3", "--source", source)
    assert res.exit_code == 0, res.output
    said = " ".join(res.stdout.split())
    assert f"under patch {hook} at positions 3 from '{source}'" in said
    res = run(*args, "--steer", "L0.resid_post.F7=3.5@2", "--steer", "L0.resid_post.F3=-1")
    assert res.exit_code == 0, res.output
    said = " ".join(res.stdout.split())
    assert (
        "under steer along latent L0.resid_post.F7 × 3.5 at positions 2; "
        "steer along latent L0.resid_post.F3 × -1" in said
    )


def test_mean_ablation_names_the_reference_flag(model_dir: Path) -> None:
    args = [str(model_dir), PROMPT, "-t", " w6", "-d", " w7", "--ablate", "L1.H2"]
    res = run(*args, "--ablate-mode", "mean")
    assert isinstance(res.exception, InputError)
    assert "--reference" in str(res.exception) and "InterventionSet" not in str(res.exception)
    reference = "w3 w1 w2 w5"
    r = as_json(*args, "--ablate-mode", "mean", "--reference", reference, "--measure", "0")
    model = load_model(model_dir)
    with torch.no_grad():
        _, cache = model.run_with_cache(model.to_tokens(reference))
    mean = cache["blocks.1.attn.hook_z"][0, :, 2].mean(0)

    def to_mean(x: torch.Tensor, hook: Any) -> torch.Tensor:
        x = x.clone()
        x[:, :, 2] = mean
        return x

    logits = last_logits(model_dir, PROMPT, [("blocks.1.attn.hook_z", to_mean)])
    assert r["result"]["value"] == pytest.approx(float(logits[8] - logits[9]), abs=1e-5)
    res = run(*args, "--ablate-mode", "mean", "--reference", reference, "--measure", "0")
    assert "under ablate L1.H2 (mean)" in " ".join(res.stdout.split())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--steer", "L0.resid_post.F7"], "LATENT=COEF"),
        (["--steer", "L0.resid_post.F7=x"], "not a number"),
        (["--steer", "L0.H1=2"], "SAE latents"),
        (["--patch", "blocks.0.hook_resid_post"], "--source"),
        (["--patch", "blocks.0.hook_resid_post@a", "--source", "w1"], "integers"),
    ],
)
def test_bad_steer_and_patch(model_dir: Path, extra: list[str], message: str) -> None:
    res = run(str(model_dir), PROMPT, "-t", " w6", "-d", " w7", *extra)
    assert res.exit_code != 0
    assert isinstance(res.exception, InputError) and message in str(res.exception), res.output


def test_sae_option_takes_a_transcoder_folder(model_dir: Path, tmp_path: Path) -> None:
    """`--sae` opens a transcoder in SAELens' layout: its features are nodes, and with the error
    kept the value is the model's own logit difference."""
    from lenscope.sae.transcoder_formats import export_saelens_transcoder
    from tests.sae.helpers import random_transcoder

    t = random_transcoder(1, d_sae=16, reads="resid_mid", dtype=torch.float32)
    folder = export_saelens_transcoder(t, tmp_path / "tc")
    out = as_json(str(model_dir), PROMPT, "-t", " w6", "-d", " w7", "--sae", str(folder))
    logits = last_logits(model_dir, PROMPT)
    r = out["result"]
    assert r["value"] == pytest.approx(float(logits[8] - logits[9]), abs=1e-4)
    ids = {row["node"] for row in r["table"]["rows"]}
    assert any(i.startswith("L1.transcoder.F") for i in ids), ids
