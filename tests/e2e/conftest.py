"""A real `lenscope serve` of a shipped model (mini, else attn2) with its shipped SAE and freshly
harvested records (neurons, heads and latents),
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
    from lenscope.model import fingerprint
    from lenscope.records import HarvestConfig, harvest
    from lenscope.sae import load_sae, saes_for_model

    name = shipped_model()
    model = load_model(name)
    sae_paths = saes_for_model(fingerprint(model), residual_only=True)
    d = tmp_path_factory.mktemp("e2e")
    corpus = sorted(glob.glob(str(Path(sysconfig.get_paths()["stdlib"]) / "json" / "*.py")))
    cfg = HarvestConfig(n_tokens=4096, ctx=64, batch_rows=8, shard_rows=64, top_k=10, random_k=10)
    harvest(
        model,
        d / "records",
        saes=[load_sae(p).eval() for p in sae_paths],
        config=cfg,
        corpus=corpus,
        progress=False,
        log=lambda _: None,
    )
    home = Path(os.environ.get("LENSCOPE_HOME", d / "home"))
    saes = [a for p in sae_paths for a in ("--sae", str(p))]
    proc, url = start_server(resolve_model_path(name), home, "--records", str(d / "records"), *saes)
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
