"""Splicing (error term, request scope, gradients) and evaluation, each against a brute-force
computation with plain hooks."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.model.capture import capture
from lenscope.nodes import latent_node_id, parse_latent_node_id
from lenscope.sae import SAEConfig, SparseAutoencoder
from lenscope.sae.ablation import _add_at, effect_sparsity
from lenscope.sae.dictionary import Dictionary, check_compatible, splice
from lenscope.sae.evaluate import evaluate_sae
from lenscope.sae.train import sae_config_for
from tests.sae.helpers import tiny_model, tiny_tokens

HOOK = "blocks.0.hook_resid_post"


def _sae(model: Any, hook: str = HOOK, k: int = 4, **kw: Any) -> SparseAutoencoder:
    sae = SparseAutoencoder(sae_config_for(model, hook, k=k, d_sae=96, **kw), seed=2)
    toks = torch.from_numpy(tiny_tokens(2000)[: 8 * 16].reshape(8, 16))
    sae.init_from_data(capture(model, toks, hook).reshape(-1, sae.d_in))
    return sae.eval()


def _toks(n: int = 4, seed: int = 1) -> Tensor:
    return torch.from_numpy(tiny_tokens(4000, seed=seed)[: n * 16].reshape(n, 16))


def _nothing_attached(m: Any) -> bool:
    return not any(hp.fwd_hooks or hp.bwd_hooks for hp in m.hook_dict.values())


def test_keep_error_leaves_output_unchanged_and_exposes_latents() -> None:
    m = tiny_model()
    sae = _sae(m)
    t = _toks()
    clean = m(t)
    acts = capture(m, t, HOOK)
    names = set(m.hook_names())
    sink: dict[str, Tensor] = {}
    with torch.no_grad():
        out = m.run_with_hooks(t, fwd_hooks=splice(sae, keep_error=True, sink=sink))
    torch.testing.assert_close(out, clean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sink[HOOK], sae.encode(acts))
    assert sink[HOOK].shape == (4, 16, 96) and bool(((sink[HOOK] > 0).sum(-1) <= 4).all())
    # request-scoped: no hook point was added to the model and no hook is left on it
    assert set(m.hook_names()) == names and _nothing_attached(m)


def test_splice_without_error_equals_manual_replacement() -> None:
    m = tiny_model()
    sae = _sae(m, normalize=True)
    t = _toks()
    with torch.no_grad():
        want = m.run_with_hooks(t, fwd_hooks=[(HOOK, lambda x, _h: sae.decode(*_enc(sae, x)))])
        got = m.run_with_hooks(t, fwd_hooks=splice(Dictionary.of(sae)))
    torch.testing.assert_close(got, want)
    assert _nothing_attached(m)


def _enc(sae: SparseAutoencoder, x: Tensor) -> tuple[Tensor, Any]:
    xn, st = sae.normalize(x)
    return sae.activation(sae.pre_acts(xn)), st


def test_ablating_a_latent_removes_exactly_its_decoder_row() -> None:
    m = tiny_model()
    sae = _sae(m)
    t = _toks(2)
    acts = capture(m, t, HOOK)
    z = sae.encode(acts)
    b, p = 1, 5
    i = int(z[b, p].argmax())

    def ablate(f: Tensor) -> Tensor:
        f = f.clone()
        f[b, p, i] = 0
        return f

    with torch.no_grad():
        with m.hooks(fwd=splice(sae, keep_error=True, sink={})):
            _, cache = m.run_with_cache(t, names_filter=HOOK)
        with m.hooks(fwd=splice(sae, keep_error=True, edit=ablate)):
            out2, cache2 = m.run_with_cache(t, names_filter=HOOK)
    diff = cache2[HOOK] - cache[HOOK]
    want = torch.zeros_like(diff)
    want[b, p] = -z[b, p, i] * sae.W_dec[i]
    torch.testing.assert_close(diff, want, atol=1e-5, rtol=1e-5)
    # the ablation-sparsity hook does the same without splicing
    delta = want[[b], p].detach()
    direct = m.run_with_hooks(t[[b]], fwd_hooks=[(HOOK, _add_at(delta, torch.tensor([p])))])
    torch.testing.assert_close(direct, out2[[b]], atol=1e-4, rtol=1e-4)


def test_gradients_through_spliced_latents() -> None:
    m = tiny_model()
    sae = _sae(m)
    t = _toks(2)
    grads: dict[str, Tensor] = {}

    def keep(g: Tensor, hook: Any) -> None:
        grads["hook_output"] = g

    m.zero_grad()
    m(t)[0, -1, 3].backward()
    clean_grad = m.W_E.grad.clone()  # type: ignore[union-attr]
    m.zero_grad()
    sink: dict[str, Tensor] = {}
    with m.hooks(fwd=splice(sae, keep_error=True, sink=sink), bwd=[(HOOK, keep)]):
        m(t)[0, -1, 3].backward()
    g_acts = sink[HOOK].grad
    assert g_acts is not None
    assert g_acts.shape == (2, 16, 96) and float(g_acts.abs().sum()) > 0
    # a latent's gradient is its decoder row against the output gradient (error held fixed)
    torch.testing.assert_close(g_acts, grads["hook_output"] @ sae.W_dec.detach().t())
    # the error term is not detached: upstream gradients stay the model's own
    torch.testing.assert_close(m.W_E.grad, clean_grad, atol=1e-5, rtol=1e-4)


def test_splice_checks_and_node_ids() -> None:
    m = tiny_model()
    sae = _sae(m)
    other = tiny_model(d_vocab=65)
    with pytest.raises(InputError, match="fingerprint"):
        check_compatible(other, Dictionary.of(sae))
    check_compatible(other, Dictionary.of(sae), strict=False)
    wrong = SparseAutoencoder(SAEConfig(d_in=16, d_sae=32, k=2, hook_name=HOOK))
    msg = r"d_in = 16 but tiny's blocks\.0\.hook_resid_post is 32"
    with pytest.raises(InputError, match=msg):
        check_compatible(m, Dictionary.of(wrong))
    with pytest.raises(InputError, match=msg):
        evaluate_sae(m, wrong, tiny_tokens(3000), n_tokens=64, batch_size=2)
    assert latent_node_id("blocks.6.hook_resid_post", 1234) == "L6.resid_post.F1234"
    for name in (
        "blocks.6.hook_resid_post",
        "blocks.2.attn.hook_z",
        "hook_embed",
        "blocks.0.mlp.hook_post",
    ):
        assert parse_latent_node_id(latent_node_id(name, 7)) == (name, 7)


def test_per_head_hook_z() -> None:
    m = tiny_model()
    sae = _sae(m, "blocks.1.attn.hook_z")
    assert sae.d_in == 32  # 4 heads x 8
    t = _toks()
    hook = "blocks.1.attn.hook_z"
    with torch.no_grad():
        kept = m.run_with_hooks(t, fwd_hooks=splice(sae, keep_error=True, sink={}))
        torch.testing.assert_close(kept, m(t), atol=1e-5, rtol=1e-5)
        got = m.run_with_hooks(t, fwd_hooks=splice(sae))
        want = m.run_with_hooks(
            t, fwd_hooks=[(hook, lambda z, _h: sae(z.reshape(*z.shape[:2], -1)).reshape(z.shape))]
        )
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_evaluation_matches_brute_force() -> None:
    m = tiny_model()
    sae = _sae(m)
    val = tiny_tokens(3000, seed=9)
    res = evaluate_sae(m, sae, val, n_tokens=4 * 16 * 3, batch_size=4, ablation_samples=6)
    t = torch.from_numpy(val[: 12 * 16].reshape(12, 16))
    x = capture(m, t, HOOK).reshape(-1, 32)
    with torch.no_grad():
        z = sae.encode(x)
        rec = sae(x)
    assert res.n_tokens == x.shape[0]
    assert res.fvu == pytest.approx(
        float(((x - rec) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()), rel=1e-4
    )
    assert res.l0 == pytest.approx(float((z > 0).sum(1).float().mean()))
    assert res.dead_latents == int(((z > 0).sum(0) == 0).sum())
    assert sum(res.density.counts) + res.density.dead == 96
    with torch.no_grad():
        ce_clean = float(m(t, return_type="loss"))
        spliced = m.run_with_hooks(t, fwd_hooks=[(HOOK, lambda a, _h: sae(a))])
        zero = m.run_with_hooks(t, fwd_hooks=[(HOOK, lambda a, _h: torch.zeros_like(a))])
        ce_sae = float(m.loss(spliced, t))
        ce_zero = float(m.loss(zero, t))
        # mean ablation: the mean over first positions at first positions, over the rest elsewhere
        a = capture(m, t, HOOK)
        mean = torch.empty_like(a)
        mean[:, 0] = a[:, 0].mean(0)
        mean[:, 1:] = a[:, 1:].reshape(-1, 32).mean(0)
        ablated = m.run_with_hooks(t, fwd_hooks=[(HOOK, lambda _a, _h: mean)])
        ce_mean = float(m.loss(ablated, t))
        lp, lq = m(t).log_softmax(-1), spliced.log_softmax(-1)
        kl = float((lp.exp() * (lp - lq)).sum(-1).mean())
    assert res.ce_clean == pytest.approx(ce_clean, rel=1e-5)
    assert res.ce_sae == pytest.approx(ce_sae, rel=1e-4)
    assert res.ce_zero == pytest.approx(ce_zero, rel=1e-5)
    assert res.ce_mean == pytest.approx(ce_mean, rel=1e-5)
    assert res.loss_recovered_mean == pytest.approx(
        (ce_mean - ce_sae) / (ce_mean - ce_clean), rel=1e-3
    )
    assert res.loss_recovered == pytest.approx((ce_zero - ce_sae) / (ce_zero - ce_clean), rel=1e-3)
    assert res.kl_sae == pytest.approx(kl, rel=1e-3, abs=1e-7)
    assert res.ablation is not None and 0 < res.ablation.latents <= 1


def test_effect_sparsity_extremes() -> None:
    one = torch.zeros(3, 50)
    one[1, 7] = 2.0
    assert effect_sparsity(one) == pytest.approx(1 / 150)
    spread = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    assert effect_sparsity(spread) > 0.5


def test_latent_ids_are_debugger_node_ids() -> None:
    from lenscope.nodes import NodeId, NodeKind

    node = NodeId.parse(latent_node_id("blocks.3.hook_resid_mid", 42))
    assert (node.kind, node.layer, node.index, node.site) == (NodeKind.LATENT, 3, 42, "resid_mid")
    assert node.hook_name == "blocks.3.hook_resid_mid"
    assert parse_latent_node_id("l3.RESID_MID.f42") == ("blocks.3.hook_resid_mid", 42)
    with pytest.raises(InputError, match="not an SAE latent id"):
        parse_latent_node_id("L3.H4")


def test_saes_for_model_picks_this_models_saes_one_per_hook(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lenscope.model import fingerprint
    from lenscope.sae import saes_for_model, save_sae
    from lenscope.sae.io import shipped_saes_dir

    monkeypatch.setenv("LENSCOPE_HOME", str(tmp_path))
    m = tiny_model()
    other = tiny_model(d_model=48)
    assert fingerprint(m) != fingerprint(other)
    root = tmp_path / "saes"
    save_sae(_sae(m), root / "a-resid")
    save_sae(_sae(m), root / "b-resid-again")  # same hook: the first (sorted) wins
    save_sae(_sae(m, "blocks.1.attn.hook_z"), root / "c-per-head")
    save_sae(_sae(other), root / "d-other-model")
    shipped = {p.name for p in shipped_saes_dir().glob("*")}
    got = [p.name for p in saes_for_model(fingerprint(m)) if p.name not in shipped]
    assert got == ["a-resid", "c-per-head"]
    got = [p.name for p in saes_for_model(fingerprint(m), residual_only=True)]
    assert got == ["a-resid"]
    assert [p.name for p in saes_for_model(fingerprint(other))] == ["d-other-model"]
