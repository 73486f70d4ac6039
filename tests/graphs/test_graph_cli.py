"""`lenscope graph`: scores and paths as text and JSON, the Neuronpedia file, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lenscope import load_model, save_model
from lenscope.cli.main import app
from lenscope.graphs.neuronpedia import validate_neuronpedia
from lenscope.graphs.replacement import as_dictionaries
from lenscope.sae.clt import load_cross_layer_transcoder
from tests.attribution.factory import tokenized_model
from tests.graphs.helpers import random_clt, save_clt

PROMPT = "w1 w2 w3 w4 w5"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("graph")
    model = tokenized_model(d / "tok")
    return save_model(model, d / "model"), save_clt(random_clt(model), d / "clt")


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["graph", *args], catch_exceptions=True)


def test_graph_json_and_neuronpedia_file(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    from lenscope.graphs.build import GraphOptions, build_graph
    from lenscope.graphs.scores import graph_scores

    model_dir, clt = dirs
    out = tmp_path / "g.json"
    res = run(str(model_dir), PROMPT, "--transcoders", str(clt), "--json", "--out", str(out))
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["features_in_graph"] == summary["active_features"] > 0
    assert summary["paths"] and summary["backward_passes"] >= 1
    # the same graph built by the library gives the same scores
    model = load_model(model_dir)
    dics = as_dictionaries(load_cross_layer_transcoder(clt))
    g = build_graph(model, PROMPT, dics, options=GraphOptions())
    s = graph_scores(g)
    assert summary["scores"]["replacement"] == pytest.approx(s.replacement, abs=1e-5)
    assert summary["scores"]["completeness"] == pytest.approx(s.completeness, abs=1e-5)
    doc = json.loads(out.read_text())
    validate_neuronpedia(doc)
    assert doc["metadata"]["prompt"] == PROMPT
    assert doc["metadata"]["prompt_tokens"] == g.str_tokens
    kinds = {n["feature_type"] for n in doc["nodes"]}
    assert {"embedding", "logit"} <= kinds
    ids = {g.node_id(i): i for i in range(g.n_nodes)}
    for link in doc["links"][:50]:
        t, s_ = ids[link["target"]], ids[link["source"]]
        assert link["weight"] == pytest.approx(float(g.adjacency[t, s_]), abs=1e-5)
    # links between positions name the head that carried them
    pos = {n["node_id"]: n["ctx_idx"] for n in doc["nodes"]}
    cross = [lk for lk in doc["links"] if pos[lk["source"]] != pos[lk["target"]]]
    assert cross and all(lk["head"].startswith("L") for lk in cross)
    assert all("head" not in lk for lk in doc["links"] if lk not in cross)
    # text output names the scores and paths
    res = run(str(model_dir), PROMPT, "--transcoders", str(clt), "-t", "w3", "-d", "w4")
    assert res.exit_code == 0, res.output
    assert "replacement score" in res.stdout and "→" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--node-threshold", "0"], "(0, 1]"),
        (["--edge-threshold", "2"], "(0, 1]"),
        (["-t", "#999"], "not in the vocabulary"),
        (["--max-feature-nodes", "100000000"], "GiB"),
        (["-d", "w4"], "--distractor needs --target"),
    ],
)
def test_one_line_errors(dirs: tuple[Path, Path], args: list[str], message: str) -> None:
    from lenscope.cli.main import main

    model_dir, clt = dirs
    res = run(str(model_dir), PROMPT, "--transcoders", str(clt), *args)
    assert res.exit_code != 0
    assert message in str(res.exception)
    del main


def test_no_transcoders(dirs: tuple[Path, Path]) -> None:
    model_dir, _ = dirs
    res = run(str(model_dir), PROMPT)
    assert res.exit_code != 0 and "pass --transcoders" in str(res.exception)
