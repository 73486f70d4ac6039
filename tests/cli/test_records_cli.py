"""`lenscope harvest | show | explain` end to end on a tiny saved model, against the library."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lenscope import load_model, save_model
from lenscope.cli.main import app
from lenscope.errors import LenscopeError
from lenscope.jsonable import to_jsonable
from lenscope.model import fingerprint
from lenscope.records import Records, most_active
from lenscope.sae import SAEConfig, SparseAutoencoder, load_sae, save_sae
from tests.explain.fake_llm import KEY, FakeLLM
from tests.records.helpers import tiny_model, write_texts

runner = CliRunner()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    h = tmp_path_factory.mktemp("home")
    model = tiny_model()
    save_model(model, h / "models" / "tinyrec")
    sae_cfg = SAEConfig(
        d_in=32,
        d_sae=24,
        k=4,
        hook_name="blocks.1.hook_resid_mid",
        model_fingerprint=fingerprint(model),
    )
    save_sae(SparseAutoencoder(sae_cfg), h / "saes" / "tinysae")  # found as "made for" tinyrec
    save_model(tiny_model(seed=3, name="other"), h / "models" / "other")
    write_texts(h / "texts")
    old = os.environ.get("LENSCOPE_HOME")
    os.environ["LENSCOPE_HOME"] = str(h)
    r = invoke(
        "harvest",
        "tinyrec",
        "--tokens",
        "512",
        "--corpus",
        str(h / "texts"),
        "--ctx",
        "16",
        "--batch-rows",
        "4",
        "--top-k",
        "6",
        "--random-k",
        "6",
        "--json",
    )
    h.joinpath("harvest.json").write_text(r.stdout)
    yield h
    if old is None:
        os.environ.pop("LENSCOPE_HOME", None)
    else:
        os.environ["LENSCOPE_HOME"] = old


def invoke(*args: str) -> Any:
    r = runner.invoke(app, list(args))
    if r.exception is not None and not isinstance(r.exception, SystemExit | LenscopeError):
        raise r.exception
    return r


def test_harvest_writes_records_and_offline_explanations(home: Path) -> None:
    out = json.loads((home / "harvest.json").read_text())
    recs = Records(home / "records" / "tinyrec", load_model("tinyrec"))
    ids = recs.node_ids()
    assert out["harvest"]["n_nodes"] == len(ids) == 2 * (48 + 4) + 24
    assert "L1.resid_mid.F23" in ids
    assert out["harvest"]["n_tokens"] == 512
    assert out["explain"]["nodes"] == len(ids)
    assert {x.node_id for x in recs.explanations()} == set(ids)
    again = invoke(
        "harvest",
        "tinyrec",
        "--tokens",
        "512",
        "--corpus",
        str(home / "texts"),
        "--ctx",
        "16",
        "--batch-rows",
        "4",
        "--top-k",
        "6",
        "--random-k",
        "6",
        "--json",
    )
    assert json.loads(again.stdout)["harvest"]["up_to_date"] is True


def test_show_json_is_the_library_record_and_writes_a_page(home: Path, tmp_path: Path) -> None:
    r = invoke("show", "tinyrec", "L1.N5", "--json", "--out", str(tmp_path))
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    want = to_jsonable(Records(home / "records" / "tinyrec").node("L1.N5"))
    assert got["record"] == json.loads(json.dumps(want))
    page = Path(got["html"]).read_text()
    assert "<!doctype html>" in page and "L1.N5" in page and "http" not in page.split("<body>")[1]


def test_show_terminal_view(home: Path, tmp_path: Path) -> None:
    r = invoke("show", "tinyrec", "L0.H2", "--out", str(tmp_path))
    assert r.exit_code == 0, r.output
    rec = Records(home / "records" / "tinyrec").node("L0.H2")
    assert "top activations" in r.stdout and "Token statistics" in r.stdout
    assert rec.top[0].tokens[rec.top[0].center] in r.stdout
    assert "attends" in r.stdout and "page:" in r.stdout


def test_show_marks_the_active_token_without_a_terminal(home: Path, tmp_path: Path) -> None:
    """Piped output has no bold or underline: the example's own token is between ⟦ ⟧."""
    r = invoke("show", "tinyrec", "L1.N5", "--out", str(tmp_path))
    assert r.exit_code == 0, r.output
    rec = Records(home / "records" / "tinyrec").node("L1.N5")
    lines = r.stdout.splitlines()
    for e in rec.top[:3]:
        want = "".join(f"⟦{t}⟧" if i == e.center else t for i, t in enumerate(e.tokens))
        assert any(line.endswith(want) for line in lines), (want, r.stdout)
    assert r.stdout.count("⟦") == r.stdout.count("⟧") >= 3


def test_show_search_and_text(home: Path) -> None:
    recs = Records(home / "records" / "tinyrec")
    r = invoke("show", "tinyrec", "--search", "w5", "--json", "--limit", "50")
    assert json.loads(r.stdout) == to_jsonable(recs.search_tokens("w5", limit=50))
    r = invoke("show", "tinyrec", "--text", "w1 w2 w3 w1 w2", "--json", "--limit", "7")
    sae = load_sae(home / "saes" / "tinysae")
    want = to_jsonable(most_active(recs, load_model("tinyrec"), "w1 w2 w3 w1 w2", [sae], limit=7))
    assert json.loads(r.stdout) == json.loads(json.dumps(want))


def test_explain_with_an_llm_endpoint(home: Path) -> None:
    server = FakeLLM()
    try:
        r = invoke(
            "explain",
            "tinyrec",
            "--llm-url",
            server.url,
            "--llm-model",
            "fake",
            "--llm-key",
            KEY,
            "--nodes",
            "L0.N3,L1.H2",
            "--json",
        )
    finally:
        server.close()
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["ok"], out["failed"]) == (2, 0)
    x = [
        e
        for e in Records(home / "records" / "tinyrec").node("L1.H2").explanations
        if e.explainer == "llm"
    ]
    assert x and x[0].text.startswith("the token")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("show", "tinyrec", "L9.N1"), "not in the records"),
        (("show", "tinyrec", "L0.X1"), "unknown node id"),
        (("show", "tinyrec"), "exactly one of NODE"),
        (("show", "other", "L0.N1"), "no records for other"),
        (("explain", "tinyrec", "--limit", "0"), "--limit must be at least 1"),
        (("explain", "tinyrec", "--llm-url", "ftp://x"), "must start with http"),
        (("harvest", "tinyrec", "--ctx", "8", "--context-only", "8"), "context_only must lie"),
    ],
)
def test_user_mistakes_are_clear_errors(home: Path, args: tuple[str, ...], needle: str) -> None:
    r = invoke(*args)
    assert isinstance(r.exception, LenscopeError), r.output
    assert needle in str(r.exception)


def test_records_of_another_model_through_the_real_entry_point(home: Path) -> None:
    env = {**os.environ, "LENSCOPE_HOME": str(home)}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lenscope.cli.main",
            "show",
            "other",
            "L0.N1",
            "--records",
            str(home / "records" / "tinyrec"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 1
    assert "another model" in r.stderr and "Traceback" not in r.stderr


def test_ensure_records_reuses_records_of_this_model(home: Path) -> None:
    from lenscope.cli.records import ensure_records

    def no_harvest(msg: str) -> None:
        raise AssertionError(f"should not harvest: {msg}")

    assert ensure_records("tinyrec", log=no_harvest) == home / "records" / "tinyrec"


def test_ensure_records_harvests_again_when_an_sae_of_the_model_appears(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records harvested before the model's (new) SAE existed lack its latents: harvest again,
    with every SAE made for the model."""
    import lenscope.explain
    import lenscope.records
    from lenscope.cli.records import ensure_records

    model = load_model("tinyrec")
    cfg = SAEConfig(
        d_in=32,
        d_sae=8,
        k=2,
        hook_name="blocks.0.hook_resid_post",
        model_fingerprint=fingerprint(model),
    )
    extra = home / "saes" / "tinysae-new"
    save_sae(SparseAutoencoder(cfg), extra)
    calls: list[set[int]] = []

    def fake_harvest(m: Any, dest: Path, *, saes: Any = (), **kw: Any) -> None:
        calls.append({int(s.W_dec.shape[0]) for s in saes})

    monkeypatch.setattr(lenscope.records, "harvest", fake_harvest)
    monkeypatch.setattr(lenscope.explain, "explain_records", lambda *a, **k: None)
    said: list[str] = []
    try:
        ensure_records("tinyrec", log=said.append)
    finally:
        shutil.rmtree(extra)
    assert calls == [{24, 8}], calls  # both SAEs: the old one (24 latents) and the new one
    assert any("blocks.0.hook_resid_post" in s for s in said), said


def test_ensure_records_harvests_the_models_transcoder_set_too(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transcoder set made for the model (as mini ships one) is harvested with its SAEs: one
    dictionary per layer, once each, so every transcoder feature gets a record page."""
    import lenscope.explain
    import lenscope.records
    from lenscope.cli.records import ensure_records
    from lenscope.sae.transcoder_set import save_transcoder_set, trained_transcoders_dir
    from tests.sae.tc_helpers import random_set

    model = load_model("tinyrec")
    dest = trained_transcoders_dir() / "tinytc"
    save_transcoder_set(random_set(model, d_sae=12, name="tinytc"), dest)
    calls: list[list[tuple[str, int]]] = []

    def fake_harvest(m: Any, dest: Path, *, saes: Any = (), **kw: Any) -> None:
        calls.append(sorted((s.hook_in, int(s.d_sae)) for s in saes))

    monkeypatch.setattr(lenscope.records, "harvest", fake_harvest)
    monkeypatch.setattr(lenscope.explain, "explain_records", lambda *a, **k: None)
    said: list[str] = []
    try:
        ensure_records("tinyrec", log=said.append)
    finally:
        shutil.rmtree(dest)
    layers = [(f"blocks.{i}.ln2.hook_normalized", 12) for i in range(model.cfg.n_layers)]
    assert calls == [sorted([("blocks.1.hook_resid_mid", 24), *layers])], calls
    assert any("ln2.hook_normalized" in s for s in said), said
