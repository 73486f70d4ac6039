"""The paper's experiments at toy scale: the runs are what they claim to be, plots are written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lenscope.data import TokenStream
from lenscope.sae import TrainConfig
from lenscope.sae import experiments as ex
from lenscope.sae.plots import plot_experiment
from tests.sae.helpers import tiny_model, tiny_tokens


@pytest.fixture(scope="module")
def setup() -> ex.Setup:
    streams = TokenStream(tiny_tokens(20000), tiny_tokens(4000, seed=3), "random")
    tc = TrainConfig(steps=6, batch_size=128, buffer_tokens=1024, ckpt_every=100)
    return ex.prepare(
        tiny_model(), "blocks.1.hook_resid_post", streams, tc, blocks=2, eval_tokens=512
    )


def test_frontier_and_scaling(setup: ex.Setup, tmp_path: Path) -> None:
    runs = ex.frontier(setup, d_sae=64, ks=(2, 4), l1s=(0.01, 30.0), log=lambda _s: None)
    assert [r.label for r in runs] == ["topk k=2", "topk k=4", "relu l1=0.01", "relu l1=30"]
    assert [r.l0 for r in runs[:2]] == [2.0, 4.0]  # held-out L0 of TopK is exactly k
    assert runs[3].l0 < runs[2].l0  # a stronger L1 penalty gives sparser codes
    assert setup.val.shape == (512, 32)
    res = ex.ExperimentResult("frontier", "tiny", setup.hook, 6 * 128, 512, runs)
    assert Path(plot_experiment(res, tmp_path)[0]).name == "frontier.png"
    sc = ex.scaling(setup, latents=(32, 64), ks=(2,), log=lambda _s: None)
    assert [(r.d_sae, r.k) for r in sc] == [(32, 2), (64, 2)]
    res = ex.ExperimentResult("scaling", "tiny", setup.hook, 6 * 128, 512, sc)
    assert Path(plot_experiment(res, tmp_path)[0]).name == "scaling.png"


def test_held_out_matches_brute_force(setup: ex.Setup) -> None:
    from lenscope.sae import SparseAutoencoder
    from lenscope.sae.train import sae_config_for

    sae = SparseAutoencoder(sae_config_for(setup.model, setup.hook, k=3, d_sae=48))
    sae.init_from_data(setup.val)
    fvu, l0 = ex.held_out(sae, setup.val)
    x = setup.val
    with torch.no_grad():
        rec = sae(x)
    assert fvu == pytest.approx(
        float(((x - rec) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()), rel=1e-5
    )
    assert l0 == 3.0
