"""Ablating, clamping and steering a transcoder feature runs through the splice (`edit=`) in the
real model, and equals a hand-written hooked run that changes the MLP's output by the feature's
decoder row(s)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from lenscope.attribution.api import Debugger
from lenscope.attribution.questions import LogitDiff
from lenscope.errors import InputError
from lenscope.interventions.spec import Ablate, Clamp, InterventionSet, Steer, ablate
from tests.attribution.factory import logit_diff, logits_with, prompt, random_model
from tests.sae.helpers import random_clt, random_transcoder

Q = LogitDiff(target=[5], distractor=[11])


def add(delta: Tensor) -> Any:
    def fn(x: Tensor, hook: Any) -> Tensor:
        return x + delta.to(x.dtype)

    return fn


def at(position: int | None, v: Tensor) -> Tensor:
    """[p, 1] -> zero except at `position` (all positions for None)."""
    if position is None:
        return v
    m = torch.zeros_like(v)
    m[position] = 1.0
    return v * m


@pytest.mark.parametrize("reads", ["ln2", "resid_mid"])
def test_ablate_clamp_and_steer_a_transcoder_feature(reads: str) -> None:
    model = random_model("gpt2").double()
    t = random_transcoder(1, reads=reads).requires_grad_(False)
    ids = prompt()
    dbg = Debugger(model, [t])
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([ids]))
        f = t.encode(cache[t.cfg.hook_in][0])  # [p, F]
    j = int(f[3].argmax())  # an active feature at position 3
    assert float(f[3, j]) > 0
    out = t.cfg.hook_out
    row = t.W_dec[j]

    def manual(delta: Tensor) -> float:
        return logit_diff(logits_with(model, ids, [(out, add(delta))]), 5, 11)

    def run(*items: Any, reference: list[Any] | None = None) -> float:
        return dbg.why(ids, Q, InterventionSet.of(*items, reference=reference), measure=0).value

    node = f"L1.transcoder.F{j}"
    fj = f[:, j, None]
    assert run(*ablate(f"{node}@3")) == pytest.approx(manual(-at(3, fj) * row), abs=1e-9)
    assert run(*ablate(node)) == pytest.approx(manual(-fj * row), abs=1e-9)
    got = run(Clamp(node=f"{node}@3", value=2.5))
    assert got == pytest.approx(manual(at(3, 2.5 - fj) * row), abs=1e-9)
    got = run(Steer(latent=node, coefficient=-1.5, positions=[2, 4]))
    delta = (at(2, torch.ones_like(fj)) + at(4, torch.ones_like(fj))) * -1.5 * row
    assert got == pytest.approx(manual(delta), abs=1e-9)
    # mean ablation: the feature's mean over the reference prompts' tokens
    ref = [prompt(seed=5), prompt(n=6, seed=6)]
    with torch.no_grad():
        acts = [model.run_with_cache(torch.tensor([r]))[1][t.cfg.hook_in][0] for r in ref]
    mean = torch.cat([t.encode(a)[:, j] for a in acts]).mean()
    got = run(Ablate(node=f"{node}@3", mode="mean"), reference=ref)
    assert got == pytest.approx(manual(at(3, mean - fj) * row), abs=1e-9)
    # resample: the feature's activation on another prompt, position by position
    src = prompt(seed=9)
    with torch.no_grad():
        other = t.encode(model.run_with_cache(torch.tensor([src]))[1][t.cfg.hook_in][0])[:, j]
    got = run(Ablate(node=f"{node}@3", mode="resample", source=src))
    assert got == pytest.approx(manual(at(3, other[:, None] - fj) * row), abs=1e-9)


def test_cross_layer_transcoder_feature_edits_write_every_later_mlp() -> None:
    model = random_model("gpt2").double()
    clt = random_clt()
    dic = clt.dictionaries()[0]
    ids = prompt()
    dbg = Debugger(model, [clt])
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([ids]))
        f = dic.encode(cache[dic.hook_in][0])
    j = int(f[4].argmax())
    assert float(f[4, j]) > 0

    def manual(scale: Tensor) -> float:
        hooks = [(h, add(scale * dic.decoder(h)[j])) for h in dic.hooks_out]
        return logit_diff(logits_with(model, ids, hooks), 5, 11)

    def run(*items: Any) -> float:
        return dbg.why(ids, Q, InterventionSet.of(*items), measure=0).value

    fj = f[:, j, None]
    assert run(Clamp(node=f"L0.clt.F{j}@4", value=0.7)) == pytest.approx(
        manual(at(4, 0.7 - fj)), abs=1e-9
    )
    assert run(Steer(latent=f"L0.clt.F{j}", coefficient=2.0)) == pytest.approx(
        manual(2.0 * torch.ones_like(fj)), abs=1e-9
    )
    with pytest.raises(InputError, match="writes several hooks"):
        run(Steer(latent=f"L0.clt.F{j}", hook="blocks.0.hook_mlp_out"))


def test_clamp_a_neuron_and_bad_clamps() -> None:
    model = random_model("gpt2").double()
    ids = prompt()

    def set_at(x: Tensor, hook: Any) -> Tensor:
        x = x.clone()
        x[:, 2, 7] = -0.5
        return x

    got = Debugger(model).why(ids, Q, InterventionSet.of(Clamp(node="L0.N7@2", value=-0.5)))
    manual = logit_diff(logits_with(model, ids, [("blocks.0.mlp.hook_post", set_at)]), 5, 11)
    assert got.value == pytest.approx(manual, abs=1e-9)
    with pytest.raises(InputError, match="only neurons and SAE/transcoder latents"):
        Debugger(model).why(ids, Q, InterventionSet.of(Clamp(node="L0.H1", value=1.0)))
    with pytest.raises(ValueError, match="finite"):
        Clamp(node="L0.N7", value=float("inf"))
    with pytest.raises(InputError, match="no transcoder is spliced"):
        Debugger(model).why(ids, Q, InterventionSet.of(Clamp(node="L0.transcoder.F1", value=1)))
