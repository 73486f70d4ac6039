"""`lenscope discover` and the server's /api/discover routes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lenscope.cli.main import app
from lenscope.model.transformer import HookedTransformer
from lenscope.server import ServerConfig, ServerState, create_app
from lenscope.server.routes import discover as routes

runner = CliRunner()


def test_cli_json_two_methods_one_plot(tmp_path: Path) -> None:
    out = tmp_path / "plots"
    res = runner.invoke(
        app,
        ["discover", "attn2", "--task", "induction", "--method", "eap,eap-ig", "--steps", "2",
         "--rows", "4", "--ablation", "mean", "--json", "--out", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert [r["method"] for r in body["results"]] == ["eap", "eap-ig"]
    for r in body["results"]:
        assert r["ablation"] == "mean" and r["n_rows"] == 4 and r["model"] == "attn2"
        assert len(r["edges"]) == r["n_edges"] == 106
        assert r["circuit"] == [e["edge"] for e in r["edges"] if e["in_circuit"]]
    assert sorted(Path(f).name for f in body["files"]) == ["faithfulness.png", "faithfulness.svg"]
    assert (out / "faithfulness.png").stat().st_size > 0


def test_cli_text_and_task_list(tmp_path: Path) -> None:
    res = runner.invoke(app, ["discover", "mini", "--list-tasks"])
    assert res.exit_code == 0 and "brackets" in res.stdout and "self-assign" in res.stdout
    res = runner.invoke(
        app,
        ["discover", "attn2", "--task", "induction", "--method", "acdc", "--tau", "0.5",
         "--rows", "4", "--out", str(tmp_path)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "ablation resample" in res.stdout and "acdc tau=0.5" in res.stdout


@pytest.fixture(scope="module")
def client(attn2: HookedTransformer) -> Iterator[TestClient]:
    mp = pytest.MonkeyPatch()
    mp.setattr(routes, "MAX_ROWS", 8)  # the route's bound, lowered to keep the test quick
    mp.setattr(routes, "CURVE_POINTS", 8)
    st = ServerState(ServerConfig("attn2", workers=1), attn2)
    with TestClient(create_app(st), base_url="http://127.0.0.1") as c:
        yield c
    st.close()
    mp.undo()


def test_server_tasks_and_discover(client: TestClient) -> None:
    r = client.get("/api/discover/tasks")
    assert r.status_code == 200
    assert [t["name"] for t in r.json()] == ["induction"]
    r = client.post(
        "/api/discover", json={"task": "induction", "method": "eap", "ablation": "resample",
                               "top_n": 12},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"nodes", "links", "faithfulness", "method", "ablation"}
    assert set(body["faithfulness"]) == {"curve", "area", "n80", "n90", "completeness"}
    assert body["method"] == "eap" and body["ablation"] == "resample"
    assert len(body["links"]) == 12
    assert set(body["links"][0]) == {"source", "target", "weight", "receiver"}
    ids = {n["node_id"] for n in body["nodes"]}
    assert all(x["source"] in ids and x["target"] in ids for x in body["links"])
    assert set(body["nodes"][0]) >= {"node_id", "layer", "kind"}


def test_server_refuses_in_one_line(client: TestClient) -> None:
    r = client.post("/api/discover", json={"task": "brackets"})
    assert r.status_code == 404 and "its tasks: induction" in r.json()["error"]
    r = client.post("/api/discover", json={"task": "../../etc/passwd"})
    assert r.status_code == 404
    r = client.post("/api/discover", json={"task": "induction", "steps": 10_000})
    assert r.status_code == 422
    r = client.post("/api/discover", json={"task": "induction", "method": "eap", "tau": 0.1})
    assert r.status_code == 400 and "\n" not in r.json()["error"]
