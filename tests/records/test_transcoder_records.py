"""Transcoders in the records: a harvest given a transcoder folder (`--sae PATH`, loaded through
`load_dictionaries`) and a cross-layer transcoder records every feature like an SAE latent (stats,
top examples and output effects against brute force, explanations), and the server's
/api/nodes/{id} serves their pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from lenscope.data import TokenDataset
from lenscope.explain import OfflineExplainer, explain_records
from lenscope.records import Records, harvest, most_active
from lenscope.sae.io import load_dictionaries
from lenscope.sae.transcoder_formats import export_saelens_transcoder
from tests.records.helpers import rows_of, small_config, tiny_model, token_dataset
from tests.sae.helpers import random_clt, random_transcoder

CFG = small_config(mlp=False, heads=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("tcrec")
    model = tiny_model()
    folder = export_saelens_transcoder(
        random_transcoder(1, d_sae=20, dtype=torch.float32), d / "tc"
    )
    tcs = load_dictionaries(folder, model)
    clt = random_clt(d_sae=12)
    ds = token_dataset(d / "tokens")
    harvest(
        model, d / "rec", saes=[*tcs, clt], config=CFG, corpus=[str(ds)], progress=False,
        log=lambda _: None,
    )  # fmt: skip
    rows = rows_of(TokenDataset.open(ds).train, CFG.n_tokens, CFG.ctx)
    dics = {"L1.transcoder": tcs[0], **{f"L{i}.clt": x for i, x in enumerate(clt.dictionaries())}}
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.from_numpy(rows))
        ref = {k: x.encode(cache[x.hook_in]).reshape(rows.size, -1) for k, x in dics.items()}
    recs = Records(d / "rec", model)
    return {
        "model": model,
        "dics": dics,
        "clt": clt,
        "rows": rows,
        "ref": {k: v.double().numpy() for k, v in ref.items()},
        "recs": recs,
        "dir": d / "rec",
    }


def test_every_transcoder_feature_has_a_record_matching_brute_force(run: dict[str, Any]) -> None:
    recs = run["recs"]
    ids = recs.node_ids()
    want = [f"L1.transcoder.F{i}" for i in range(20)] + [
        f"L{layer}.clt.F{i}" for layer in range(2) for i in range(12)
    ]
    assert sorted(ids) == sorted(want)
    eligible = np.arange(run["rows"].size) % CFG.ctx >= CFG.context_only
    for r in recs.nodes(ids):
        prefix, idx = r.node_id.rsplit(".F", 1)
        x = run["ref"][prefix][:, int(idx)]
        assert r.kind == "latent"
        assert r.stats.count == x.size
        assert r.stats.mean == pytest.approx(x.mean(), rel=1e-4, abs=1e-6), r.node_id
        assert r.stats.max == pytest.approx(x.max(), rel=1e-5, abs=1e-6), r.node_id
        top = np.sort(x[eligible])[::-1][: CFG.top_k]
        got = [e.activation for e in r.top]
        np.testing.assert_allclose(got, top, rtol=1e-4, atol=1e-5, err_msg=r.node_id)


def test_transcoder_output_effects_follow_the_decoder_rows(run: dict[str, Any]) -> None:
    model = run["model"]
    for nid in ("L1.transcoder.F3", "L0.clt.F2"):
        dic = run["dics"][nid.rsplit(".F", 1)[0]]
        j = int(nid.rsplit(".F", 1)[1])
        direction = sum(w[j] for w in dic.decoders)  # a CLT feature writes every later MLP
        assert isinstance(direction, torch.Tensor)
        with torch.no_grad():
            d = (direction - direction.mean()).float() * model.ln_final.w
            eff = d @ model.W_U
        r = run["recs"].node(nid)
        assert [e.token_id for e in r.boosts] == eff.topk(CFG.effects_k).indices.tolist()
        np.testing.assert_allclose(
            [e.value for e in r.boosts], eff.topk(CFG.effects_k).values, rtol=1e-4, atol=1e-6
        )


def test_transcoder_features_explained_active_and_served(run: dict[str, Any]) -> None:
    from lenscope.server import ServerConfig, ServerState, create_app

    recs = run["recs"]
    explain_records(recs, OfflineExplainer(), ["L1.transcoder.F0", "L1.clt.F1"], progress=False)
    assert recs.node("L1.transcoder.F0").explanations
    model = run["model"]
    text = "w1 w2 w3 w4 w5 w6"
    active = most_active(recs, model, text, [*run["dics"].values()], limit=200)
    assert any(a.node_id.startswith("L1.transcoder.F") for a in active)
    state = ServerState(ServerConfig("tinyrec", workers=2), model, [], Records(run["dir"], model))
    with TestClient(create_app(state), base_url="http://127.0.0.1") as client:
        got = client.get("/api/nodes/L1.transcoder.F4")
        assert got.status_code == 200, got.text
        assert got.json()["node_id"] == "L1.transcoder.F4"
        assert got.json()["top"]
        assert client.get("/api/nodes/L0.clt.F11").status_code == 200
        assert client.get("/api/nodes/L1.transcoder.F99").status_code in (400, 404)
    state.close()


def test_cli_harvest_takes_a_transcoder_folder(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lenscope import save_model
    from lenscope.cli.main import app
    from tests.records.helpers import write_texts

    model = tiny_model()
    save_model(model, tmp_path / "model")
    folder = export_saelens_transcoder(
        random_transcoder(0, d_sae=16, dtype=torch.float32), tmp_path / "tc"
    )
    args = [
        "harvest", str(tmp_path / "model"), "--sae", str(folder), "--no-mlp", "--no-heads",
        "--tokens", "256", "--corpus", str(write_texts(tmp_path / "texts")), "--ctx", "16",
        "--batch-rows", "4", "--top-k", "4", "--random-k", "4", "--device", "cpu",
        "--out", str(tmp_path / "rec"), "--json",
    ]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    recs = Records(tmp_path / "rec", model)
    assert sorted(recs.node_ids()) == sorted(f"L0.transcoder.F{i}" for i in range(16))
    assert {e.node_id for e in recs.explanations()} == set(recs.node_ids())
    recs.close()
    bad = CliRunner().invoke(app, ["harvest", str(tmp_path / "model"), "--sae", str(tmp_path)])
    assert bad.exit_code != 0 and "Traceback" not in bad.output
