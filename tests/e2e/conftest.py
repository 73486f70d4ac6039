"""A real `lenscope serve` of a shipped model (mini, else attn2) with freshly harvested records,
and headless Debian Chromium driven by Playwright. Screenshots go to test-artifacts/e2e/."""

from __future__ import annotations

import glob
import os
import signal
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from lenscope.errors import LenscopeError
from lenscope.model.load import load_model, resolve_model_path
from tests.server.test_live_server import start_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("LENSCOPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def shipped_model() -> str:
    for name in ("mini", "attn2"):
        try:
            resolve_model_path(name)
            return name
        except LenscopeError:
            continue
    raise AssertionError("neither shipped model (mini, attn2) is available to the browser tests")


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The debugger URL printed by `lenscope serve MODEL --records R --port 0`."""
    from lenscope.records import HarvestConfig, harvest

    name = shipped_model()
    d = tmp_path_factory.mktemp("e2e")
    corpus = sorted(glob.glob(str(Path(sysconfig.get_paths()["stdlib"]) / "json" / "*.py")))
    cfg = HarvestConfig(n_tokens=4096, ctx=64, batch_rows=8, shard_rows=64, top_k=10, random_k=10)
    harvest(
        load_model(name),
        d / "records",
        config=cfg,
        corpus=corpus,
        progress=False,
        log=lambda _: None,
    )
    home = Path(os.environ.get("LENSCOPE_HOME", d / "home"))
    proc, url = start_server(resolve_model_path(name), home, "--records", str(d / "records"))
    yield url
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
