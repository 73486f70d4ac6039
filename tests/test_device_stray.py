"""Device bugs caught without a GPU: every instrument runs with tensors made without a device sent
to torch's "meta" device (`tests.devices.stray_tensors_fail`), and its result must equal a plain
run's. A tensor an instrument makes on the default device instead of the model's would raise
there (or, where torch lets a meta index through, change the result), as it would beside a model
on CUDA."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lenscope import Debugger, HookedTransformer, LogitDiff, load_model
from lenscope.attribution.questions import AttentionScore
from lenscope.interventions import Ablate, InterventionSet, Patch, Steer
from lenscope.jsonable import to_jsonable
from lenscope.sae import SparseAutoencoder, load_sae
from tests.devices import stray_tensors_fail

SAE = "mini-L2-resid_post-topk-k16-n2048"
PROMPT = "def f(a, b"
QUESTION = LogitDiff(target=[")"], distractor=[","])


@pytest.fixture(scope="module")
def mini() -> HookedTransformer:
    return load_model("mini")


@pytest.fixture(scope="module")
def sae() -> SparseAutoencoder:
    return load_sae(SAE)


def same_both_ways(fn: Callable[[], Any]) -> None:
    """`fn()` gives the same JSON with stray tensors on meta as without."""
    want = to_jsonable(fn())
    with stray_tensors_fail():
        got = to_jsonable(fn())
    assert got == want


def test_the_probe_catches_a_tensor_made_without_a_device(mini: HookedTransformer) -> None:
    resid = mini.W_E[:3]
    with stray_tensors_fail(), pytest.raises((RuntimeError, NotImplementedError)):
        (resid + torch.zeros(3, mini.cfg.d_model)).sum().item()
    with stray_tensors_fail():
        ok = resid + torch.zeros(3, mini.cfg.d_model, device=resid.device)
    assert torch.equal(ok, resid)
    assert torch.get_default_device() == torch.device("cpu")  # restored


def test_forward_cache_and_generation(mini: HookedTransformer) -> None:
    def run() -> Any:
        toks = mini.to_tokens(["def f(a, b):", "x = 1"])
        logits, cache = mini.run_with_cache("def f(a, b):")
        return (
            mini(toks).sum(-1),
            logits[0, -1, :5],
            cache["blocks.1.hook_resid_post"][0, -1, :5],
            mini.generate("def f(a", 6, return_text=False),
            mini.generate("def f(a", 4, temperature=1.0, top_k=5, seed=1, return_text=False),
        )

    same_both_ways(run)


def test_debugger_with_an_sae_and_interventions(
    mini: HookedTransformer, sae: SparseAutoencoder
) -> None:
    dbg = Debugger(mini, [sae])
    ivs = InterventionSet(
        interventions=[
            Ablate(node="L1.H0"),
            Ablate(node="L0.N3", mode="mean"),
            Steer(hook="blocks.0.hook_resid_post", vector=[0.1] * mini.cfg.d_model),
            Steer(latent="L2.resid_post.F3", coefficient=2.0),
            Patch(hook="blocks.1.hook_resid_pre", source="def g(x, y"),
        ],
        reference=["x = 1", "y = [2]"],
    )

    def run() -> Any:
        return (
            dbg.why(PROMPT, QUESTION, top_k=5, measure=3),
            dbg.why(PROMPT, QUESTION, ivs, top_k=5, ablation="mean", reference=["x = 1"]),
            dbg.attention(PROMPT, AttentionScore(layer=1, head=0, query_pos=4, key_pos=1)),
            dbg.trace(PROMPT, QUESTION, ["L1.H0"], top_k=4),
            dbg.trace(PROMPT, QUESTION, ["L0.H0"], direction="downstream", top_k=4),
        )

    same_both_ways(run)


def test_lens_tuned_lens_and_their_training(mini: HookedTransformer) -> None:
    from lenscope.lens import (
        evaluate_lenses,
        lens_generation,
        load_tuned_lens,
        logit_lens,
        train_tuned_lens,
    )

    tuned = load_tuned_lens("mini-tuned", mini)
    tokens = np.random.default_rng(0).integers(0, mini.cfg.d_vocab, 4000).astype(np.int32)

    def run() -> Any:
        lens, _ = train_tuned_lens(mini, tokens, steps=2, batch_size=2, ctx=16)
        return (
            logit_lens(mini, "def f(a, b):", watch=[" a"], sublayers=True),
            logit_lens(mini, "def f(a, b):", tuned=tuned),
            lens_generation(mini, "for i in range(", 3),
            evaluate_lenses(mini, tokens, lens, batch_size=2, ctx=16, max_batches=2),
        )

    same_both_ways(run)


def test_sae_training_and_evaluation(
    mini: HookedTransformer, sae: SparseAutoencoder, tmp_path: Path
) -> None:
    from lenscope.sae import TrainConfig, train_sae
    from lenscope.sae.distributed import Comm
    from lenscope.sae.evaluate import evaluate_sae
    from lenscope.sae.train import sae_config_for
    from tests.sae.helpers import tiny_model, tiny_tokens

    tiny, tokens = tiny_model(), tiny_tokens()
    cfg = sae_config_for(tiny, "blocks.1.hook_resid_post", k=4, d_sae=64)
    held_out = np.random.default_rng(0).integers(0, mini.cfg.d_vocab, 4000).astype(np.int32)

    def run() -> Any:
        res = train_sae(
            cfg,
            TrainConfig(steps=3, batch_size=64, buffer_tokens=256),
            model=tiny,
            tokens=tokens,
            run_dir=tmp_path / "run",
            fresh=True,
            save=False,
            progress=False,
            log=lambda _s: None,
            comm=Comm(),
        )
        ev = evaluate_sae(
            mini, sae, held_out, n_tokens=128, ctx=32, batch_size=2, ablation_samples=3
        )
        assert res.sae is not None
        return dict(res.sae.named_parameters()), res.history, ev

    same_both_ways(run)


def test_harvest_and_most_active(tmp_path: Path) -> None:
    from lenscope.records import Records, harvest, most_active
    from lenscope.sae import SAEConfig
    from tests.records.helpers import small_config, tiny_model, token_dataset

    model = tiny_model()
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=32, d_sae=24, k=4, hook_name="blocks.0.hook_resid_post"))
    corpus = [str(token_dataset(tmp_path / "tokens"))]
    runs = iter(["plain", "probed"])

    def run() -> Any:
        dest = tmp_path / next(runs)
        harvest(
            model,
            dest,
            saes=[sae],
            config=small_config(n_tokens=128),
            corpus=corpus,
            progress=False,
            log=lambda _: None,
        )
        recs = Records(dest, model)
        try:
            nodes = recs.nodes(recs.node_ids())
            return nodes, most_active(recs, model, "w3 w7 w1 w9 w3", [sae], limit=6)
        finally:
            recs.close()

    same_both_ways(run)


def test_circuit_report_and_path_expansion() -> None:
    from lenscope.circuits.paths import path_expansion
    from lenscope.circuits.report import circuit_report

    model = load_model("attn2")
    prompt = model.to_tokens("def f(a, b):")[0]

    def run() -> Any:
        rep = circuit_report(model, prompt=prompt, n_rows=2)
        return rep.to_json(), path_expansion(model, prompt).to_json()

    same_both_ways(run)
