"""One tiny server for the route tests: model + SAE + records (harvested once per session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lenscope import HookedTransformer
from lenscope.records import HarvestConfig, Records, harvest
from lenscope.sae import SparseAutoencoder
from lenscope.server import ServerConfig, ServerState, create_app
from lenscope.server.state import NamedSAE
from tests.server.fixtures import SAE_HOOK, corpus, tiny_model, tiny_sae


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> HookedTransformer:
    return tiny_model(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def sae() -> SparseAutoencoder:
    return tiny_sae()


@pytest.fixture(scope="session")
def records_dir(
    tmp_path_factory: pytest.TempPathFactory, model: HookedTransformer, sae: SparseAutoencoder
) -> Path:
    from lenscope.explain import OfflineExplainer, explain_records

    d = tmp_path_factory.mktemp("records")
    cfg = HarvestConfig(
        n_tokens=1024, ctx=16, batch_rows=8, shard_rows=32, top_k=6, random_k=6,
        quantile_levels=(0.5, 0.9), per_quantile=2, before=4, after=3, hist_bins=8,
        sample_rate=0.5, calib_rows=8, effects_k=5, effect_sources=20,
    )  # fmt: skip
    docs = corpus(d / "corpus")
    harvest(
        model, d / "rec", saes=[sae], config=cfg, corpus=docs, progress=False, log=lambda _: None
    )
    recs = Records(d / "rec")
    explain_records(recs, OfflineExplainer(), ["L0.H1", "L1.N3"], progress=False)
    recs.close()
    return d / "rec"


@pytest.fixture(scope="session")
def state(
    model: HookedTransformer, sae: SparseAutoencoder, records_dir: Path
) -> Iterator[ServerState]:
    st = ServerState(
        ServerConfig("tiny", workers=4),
        model,
        [NamedSAE("tiny-sae", sae, SAE_HOOK, sae.cfg.d_sae)],
        Records(records_dir, model),
    )
    yield st
    st.close()


@pytest.fixture(scope="session")
def client(state: ServerState) -> Iterator[TestClient]:
    with TestClient(create_app(state), base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture(scope="session")
def recs(records_dir: Path, model: HookedTransformer) -> Iterator[Records]:
    """The records opened independently of the server (the reference the routes must match)."""
    r = Records(records_dir, model)
    yield r
    r.close()
