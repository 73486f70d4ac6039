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


def bad_names() -> list[str]:
    return [
        "/%00",
        "/index.html%00.js",
        "/assets/app.js%00",
        "/node/L2.H3%00",
        "/" + "a" * 256,
        "/node/" + "%C3%A9" * 128,  # 128 characters, 256 bytes
        "/assets/" + "x" * 300 + ".js",
        "/" + "/".join(["d" * 200] * 25),  # each name fits, the whole path does not
    ]


@pytest.mark.parametrize("path", bad_names())
def test_names_no_file_can_have_are_a_404_without_server_paths(
    client: TestClient, tmp_path: Path, path: str
) -> None:
    r = client.get(path)
    assert r.status_code == 404, (path[:40], r.status_code, r.text[:200])
    assert "error" in r.json()
    assert str(tmp_path) not in r.text and "/dist" not in r.text


def test_the_longest_name_a_file_can_have_is_still_an_app_route(client: TestClient) -> None:
    for path in ("/node/" + "a" * 255, "/node/" + "%C3%A9" * 127 + "a"):  # 255 bytes each
        r = client.get(path)
        assert r.status_code == 200 and r.text == INDEX, (path[:40], r.status_code)


def test_a_symlink_loop_is_no_file(client: TestClient, tmp_path: Path) -> None:
    (tmp_path / "dist" / "loop").symlink_to("loop")
    r = client.get("/loop/x.js")
    assert r.status_code == 404 and str(tmp_path) not in r.text, r.text[:200]
    assert client.get("/loop").text == INDEX  # an app route, as any name that is no file
