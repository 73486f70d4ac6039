"""The built web app: files by path, the app's index for app routes (node ids contain dots),
a JSON 404 for a missing asset, nothing outside the app's folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lenscope.server.static import static_router

INDEX = "<!doctype html><title>app</title>"


@pytest.fixture()
def client(tmp_path: Path) -> TestClient:
    web = tmp_path / "dist"
    (web / "assets").mkdir(parents=True)
    (web / "index.html").write_text(INDEX)
    (web / "assets" / "app.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("root:x")
    app = FastAPI()
    app.include_router(static_router(web))
    return TestClient(app, base_url="http://127.0.0.1")


@pytest.mark.parametrize(
    "path", ["/", "/lens", "/node/L2.H3", "/node/L2.resid_post.F5", "/node/L0.N17", "/circuits"]
)
def test_app_routes_get_the_index(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200 and r.text == INDEX, (path, r.status_code, r.text[:80])


def test_files_and_missing_assets(client: TestClient) -> None:
    assert client.get("/assets/app.js").text == "console.log(1)"
    for missing in ("/assets/gone.js", "/favicon.ico", "/x/style.css"):
        r = client.get(missing)
        assert r.status_code == 404 and "no file" in r.json()["error"], missing
    r = client.get("/../secret.txt")
    assert "root:" not in r.text
