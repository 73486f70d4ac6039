"""SAE latents as nodes: the request-scoped splice leaves the output unchanged, latents (with the
SAE's bias and error) decompose the stream exactly, their activation x gradient is a first-order
change, and ablating or steering a latent equals a hand-written hook."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from lenscope.attribution.api import Debugger
from lenscope.attribution.questions import LogitDiff
from lenscope.errors import InputError
from lenscope.interventions.spec import InterventionSet, Steer, ablate
from lenscope.nodes import NodeId, NodeKind
from lenscope.sae.dictionary import Dictionary
from tests.attribution.factory import logit_diff, logits_with, prompt, random_model

HOOK = "blocks.0.hook_resid_post"
Q = LogitDiff(target=[5], distractor=[11])


class ReluDictionary:
    """A minimal dictionary implementing the protocol (not lenscope's SAE)."""

    def __init__(self, d: int, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.W_enc = torch.randn(d, n, generator=g, dtype=torch.float64) / d**0.5
        self.b_enc = torch.randn(n, generator=g, dtype=torch.float64) * 0.1
        self.W_dec = torch.randn(n, d, generator=g, dtype=torch.float64) / d**0.5

    def encode(self, x: Tensor) -> Tensor:
        out: Tensor = (x.to(self.W_enc.dtype) @ self.W_enc + self.b_enc).relu()
        return out


def saes() -> list[Any]:
    out: list[Any] = [Dictionary.of(ReluDictionary(32, 48), hook_name=HOOK)]
    try:
        from lenscope.sae import SAEConfig, SparseAutoencoder
    except ImportError:  # the SAE package is optional for the engine
        return out
    for normalize in (False, True):
        cfg = SAEConfig(d_in=32, d_sae=64, k=6, hook_name=HOOK, normalize=normalize)
        sae = SparseAutoencoder(cfg, dtype=torch.float64, seed=1)
        with torch.no_grad():
            sae.b_dec.add_(
                torch.randn(32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
                * 0.1
            )
        out.append(sae)
    return out


def add_at(index: tuple[Any, ...], v: Tensor) -> Any:
    def fn(x: Tensor, hook: Any) -> Tensor:
        x = x.clone()
        x[index] += v.to(x.dtype)
        return x

    return fn


@pytest.mark.parametrize("which", range(3))
def test_latents_decompose_the_stream_and_keep_the_output(which: int) -> None:
    all_saes = saes()
    if which >= len(all_saes):
        pytest.skip("lenscope.sae is not installed")
    sae = all_saes[which]
    src = Dictionary.of(sae)
    model = random_model("gpt2").double()
    ids = prompt()
    r = Debugger(model, [sae]).why(ids, Q, measure=0, top_k=20)
    clean = logit_diff(logits_with(model, ids), 5, 11)
    assert r.value == pytest.approx(clean, abs=1e-9)  # the splice keeps the output
    assert r.table.direct_total == pytest.approx(clean, abs=1e-9)  # latents are a separate view
    assert r.sae_hooks == [HOOK]
    latents = [row for row in r.table.rows if row.kind is NodeKind.LATENT]
    assert latents and all(row.component.startswith("L0.resid_post.F") for row in latents)
    # latents + what they leave out = the stream at the hook, read through the frozen final norm
    last = len(ids) - 1
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([ids]))
        x_final = cache["resid_post", 1][0, last]
        s = ((x_final - x_final.mean()).pow(2).mean() + model.ln_final.eps).sqrt()
        d = model.W_U[:, 5] - model.W_U[:, 11]
        assert model.ln_final.w is not None
        read = d * model.ln_final.w / s
        read = read - read.mean()
        stream = float(cache[HOOK][0, last] @ read)
    lat_sum = next(k for k in r.table.sums if k.kind is NodeKind.LATENT).direct_effect
    rest = next(t.value for t in r.table.terms if t.name == "L0.resid_post.sae_rest")
    assert lat_sum + rest == pytest.approx(stream, abs=1e-9)
    # activation x gradient of a latent = first-order change when the latent is scaled
    row = next(row for row in latents if row.granularity == "position")
    node = NodeId.parse(row.node)
    with torch.no_grad():
        f = src.encode(cache[HOOK])[0, node.position, node.index]
        scale = src.write_scale(cache[HOOK])[0, node.position]
    step = (f * scale * src.W_dec[node.index]).to(torch.float64)
    eps = 1e-6
    up = logit_diff(
        logits_with(model, ids, [(HOOK, add_at((slice(None), node.position), eps * step))]), 5, 11
    )
    down = logit_diff(
        logits_with(model, ids, [(HOOK, add_at((slice(None), node.position), -eps * step))]), 5, 11
    )
    assert row.total_effect == pytest.approx((up - down) / (2 * eps), rel=1e-6, abs=1e-10)
    # ablating it removes exactly its write; steering adds its decoder direction
    cut = Debugger(model, [sae]).why(ids, Q, InterventionSet.of(*ablate(row.node)), measure=0)
    manual = logit_diff(
        logits_with(model, ids, [(HOOK, add_at((slice(None), node.position), -step))]), 5, 11
    )
    assert cut.value == pytest.approx(manual, abs=1e-9)
    steer = Steer(latent=row.component, coefficient=3.0, positions=[2])
    got = Debugger(model, [sae]).why(ids, Q, InterventionSet.of(steer), measure=0).value
    manual = logit_diff(
        logits_with(model, ids, [(HOOK, add_at((slice(None), 2), 3.0 * src.W_dec[node.index]))]),
        5,
        11,
    )
    assert got == pytest.approx(manual, abs=1e-9)


def test_latents_in_traces_and_bad_saes() -> None:
    sae = saes()[0]
    model = random_model("gpt2")
    dbg = Debugger(model, [sae])
    ids = prompt()
    down = dbg.trace(ids, Q, ["L0.H1@4"], direction="downstream", top_k=50)
    assert any(r.kind is NodeKind.LATENT for r in down.rows)
    r = dbg.why(ids, Q, measure=0)
    lat = next(
        row for row in r.table.rows if row.kind is NodeKind.LATENT and row.position is not None
    )
    up = dbg.trace(ids, Q, [lat.node], top_k=20)
    assert up.rows and all(row.layer in (None, 0) for row in up.rows)
    with pytest.raises(InputError, match="not a residual-stream hook"):
        Debugger(model, [Dictionary.of(ReluDictionary(32, 8), hook_name="blocks.0.mlp.hook_post")])
    with pytest.raises(InputError, match="d_model"):
        Debugger(model, [Dictionary.of(ReluDictionary(16, 8), hook_name=HOOK)])
    with pytest.raises(InputError, match="one SAE per hook"):
        Debugger(model, [sae, sae])
    with pytest.raises(InputError, match="latent 99 does not exist"):
        dbg.why(ids, Q, InterventionSet.of(*ablate("L0.resid_post.F99")))


def test_latent_trace_through_a_wide_float32_sae() -> None:
    """A float32 SAE wide enough for `lenscope.linalg`'s oneDNN path (as the shipped SAE is):
    a downstream trace differentiates its encoder forward-mode (`torch.func.jvp`), which the
    oneDNN op cannot do, and must still reach the latents."""
    from lenscope.linalg import MIN_MACS
    from lenscope.sae import SAEConfig, SparseAutoencoder

    model = random_model("gpt2")
    ids = prompt()
    sae = SparseAutoencoder(SAEConfig(d_in=32, d_sae=4096, k=6, hook_name=HOOK), seed=1)
    assert len(ids) * 32 * 4096 >= MIN_MACS
    down = Debugger(model, [sae]).trace(ids, Q, ["L0.H1@4"], direction="downstream", top_k=50)
    assert any(r.kind is NodeKind.LATENT for r in down.rows)
