"""`pip install .` (not editable) gives a working `lenscope serve mini` with the web page.

The wheel is built from a copy of the checkout's build inputs (so the checkout gets no `build/`),
installed into a fresh virtual environment whose dependencies come from this one's site-packages
through a `.pth` line (no network), and served from a folder outside the checkout with no
PYTHONPATH: the page and the shipped model can only come from inside the installed package.
Needs the built web app (`make web`; `make test` builds it first).
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from lenscope import artifacts

REPO = Path(__file__).resolve().parents[1]
WEB_DIST = REPO / "web" / "dist"
BUILD_INPUTS = (
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
    "src",
    "assets",
    "web/dist",
)
# Variables that would point the installed lenscope back at the checkout.
LEAKS = ("PYTHONPATH", "PYTHONHOME", "LENSCOPE_ASSETS", "LENSCOPE_WEB_DIR")


def run(
    *cmd: str | Path,
    timeout: float = 300,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> str:
    args = [str(c) for c in cmd]
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    assert out.returncode == 0, f"{args} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def tree_digests(root: Path, prefix: str) -> dict[str, str]:
    return {
        prefix + p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert (WEB_DIST / "index.html").is_file(), (
        "the web app is not built: run `make web` (make test does) before this test"
    )
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=skip)
        else:
            shutil.copy2(REPO / name, src / name)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "-w", tmp / "out", src)  # fmt: skip
    (whl,) = (tmp / "out").glob("lenscope-*.whl")
    return whl


@pytest.mark.slow
def test_the_wheel_carries_the_assets_and_the_web_app(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        inside = {
            n: hashlib.sha256(z.read(n)).hexdigest()
            for n in z.namelist()
            if n.startswith(("lenscope/_assets/", "lenscope/_web/"))
        }
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA")))
        names = set(z.namelist())
    expected = tree_digests(REPO / "assets", "lenscope/_assets/")
    expected |= tree_digests(WEB_DIST, "lenscope/_web/")
    assert inside == expected
    assert "lenscope/_assets/models/mini/model.safetensors" in inside
    assert {"lenscope/py.typed", "lenscope/cli/main.py"} <= names
    torch = [
        Requirement(line.split(":", 1)[1].strip())
        for line in meta.decode().splitlines()
        if line.startswith("Requires-Dist: torch")
    ]
    assert len(torch) == 1 and torch[0].specifier.contains("2.13.0"), torch
    assert not torch[0].specifier.contains(
        "2.4.1"
    )  # no older than F.scaled_dot_product_attention(enable_gqa=)


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the wheel; a .pth line lends it this venv's dependencies (a
    plain path line, so this venv's own .pth files, the editable install among them, stay off)."""
    env_dir = tmp_path_factory.mktemp("venv") / "v"
    run(sys.executable, "-m", "venv", "--without-pip", env_dir)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )
    paths = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "_lenscope_test_deps.pth").write_text("".join(f"{p}\n" for p in paths))
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "--no-compile", wheel)  # fmt: skip
    return env_dir


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LEAKS}
    return env | {"LENSCOPE_HOME": str(home)}


@pytest.mark.slow
def test_the_installed_package_finds_its_data_inside_itself(venv: Path, tmp_path: Path) -> None:
    code = (
        "import lenscope; from lenscope.artifacts import shipped_dir;"
        "print(lenscope.__file__); print(shipped_dir('assets')); print(shipped_dir('web'))"
    )
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    out = run(python, "-c", code, cwd=tmp_path, env=clean_env(tmp_path / "home"), timeout=120)
    init, assets, web = (Path(line) for line in out.split())
    package = init.parent
    assert package.is_relative_to(venv), init
    assert assets == package / "_assets" and web == package / "_web"


def lines_of(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    q: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            q.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return q


@pytest.fixture()
def served(venv: Path, tmp_path: Path) -> Iterator[str]:
    """`lenscope serve mini` from the installed package on a free loopback port; its base URL."""
    exe = venv / ("Scripts/lenscope.exe" if os.name == "nt" else "bin/lenscope")
    proc = subprocess.Popen(
        [str(exe), "serve", "mini", "--host", "127.0.0.1", "--port", "0", "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env=clean_env(tmp_path / "home"),
    )
    try:
        q, seen, deadline = lines_of(proc), [], time.monotonic() + 180
        url = None
        while url is None and time.monotonic() < deadline:
            try:
                line = q.get(timeout=1)
            except queue.Empty:
                assert proc.poll() is None, "lenscope serve exited:\n" + "".join(seen)
                continue
            seen.append(line)
            if "open the debugger: " in line:
                url = line.split("open the debugger: ", 1)[1].strip()
        assert url is not None, "lenscope serve printed no URL in 180 s:\n" + "".join(seen)
        yield url.split("/?", 1)[0]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


@pytest.mark.slow
def test_pip_install_serves_the_page_and_the_api(served: str) -> None:
    with httpx.Client(base_url=served, timeout=30, trust_env=False) as http:  # loopback: no proxy
        page = http.get("/")
        assert page.status_code == 200
        assert page.text == (WEB_DIST / "index.html").read_text(encoding="utf-8")
        script = next(p for p in (WEB_DIST / "assets").iterdir() if p.suffix == ".js")
        js = http.get(f"/assets/{script.name}")
        assert js.status_code == 200 and js.content == script.read_bytes()
        health = http.get("/api/health").json()
        assert health["status"] == "ok" and health["model"] == "mini"


def test_shipped_data_is_found_by_variable_then_package_then_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "checkout" / "src" / "lenscope"
    package.mkdir(parents=True)
    monkeypatch.setattr(artifacts, "PACKAGE_DIR", package)
    for var in ("LENSCOPE_ASSETS", "LENSCOPE_WEB_DIR"):
        monkeypatch.delenv(var, raising=False)
    checkout = tmp_path / "checkout"
    assert artifacts.shipped_dir("assets") == checkout / "assets"  # a checkout, even unbuilt
    assert artifacts.shipped_dir("web") == checkout / "web" / "dist"
    (package / "_assets").mkdir()
    (package / "_web").mkdir()
    assert artifacts.shipped_dir("assets") == package / "_assets"
    assert artifacts.shipped_dir("web") == package / "_web"
    monkeypatch.setenv("LENSCOPE_ASSETS", str(tmp_path / "mine"))
    monkeypatch.setenv("LENSCOPE_WEB_DIR", str(tmp_path / "app"))
    assert artifacts.shipped_dir("assets") == tmp_path / "mine"
    assert artifacts.shipped_dir("web") == tmp_path / "app"
