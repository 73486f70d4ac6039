"""Harvest and most-active run on a private view: with a user's hook on the model (zeroing every
head's output) the records equal a fresh copy's, and nothing is left on the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lenscope import HookedTransformer
from lenscope.records import Records, harvest, most_active
from lenscope.sae import SAEConfig, SparseAutoencoder
from tests.model.isolation import assert_same, clean, spoiled
from tests.records.helpers import small_config, tiny_model, token_dataset


def test_harvest_and_most_active_do_not_see_the_users_hooks(tmp_path: Path) -> None:
    model, fresh = tiny_model(), tiny_model()
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=32, d_sae=24, k=4, hook_name="blocks.0.hook_resid_post"))
    corpus = [str(token_dataset(tmp_path / "tokens"))]
    cfg = small_config(n_tokens=512)
    text = "w3 w7 w1 w9 w3 w7 w2 w40"

    def records(m: HookedTransformer, dest: Path) -> tuple[Any, Any]:
        harvest(m, dest, saes=[sae], config=cfg, corpus=corpus, progress=False, log=lambda _: None)
        recs = Records(dest, fresh)
        nodes = recs.nodes(recs.node_ids())
        return nodes, most_active(recs, m, text, [sae], limit=12)

    want = records(fresh, tmp_path / "fresh")
    with spoiled(model):
        toks = model.to_tokens(text)
        assert not torch.equal(model(toks), fresh(toks))  # the hook changes the output
        got = records(model, tmp_path / "hooked")
    assert len(want[0]) > 0 and len(want[1]) == 12
    assert_same(got, want)
    assert clean(model)
