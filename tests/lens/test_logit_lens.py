"""The logit lens equals independent computations: the model's own output, run_with_cache residuals
through a hand-written final norm and W_U, and transformers' hidden states through ln_f + lm_head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from lenscope import load_model
from lenscope.lens import logit_lens
from lenscope.lens.boundaries import lens_boundaries
from lenscope.lens.core import lens_logits
from tests.lens.fixtures import ARCHS, manual_norm, manual_unembed, tiny, tokens
from tests.model.hf_fixtures import VOCAB, make_checkpoint


@pytest.mark.parametrize("arch", list(ARCHS))
def test_last_boundary_is_the_models_output_exactly(arch: str) -> None:
    m = tiny(arch)
    toks = tokens(m.cfg.d_vocab)
    with torch.no_grad():
        out = m(toks)
    _, logits = lens_logits(m, toks)
    assert torch.equal(logits[-1], out)
    res = logit_lens(m, toks, k=7, watch=["3", "#40"])
    logp = out[0].log_softmax(-1)
    top = logp.exp().topk(7)
    assert torch.equal(res.top_probs[-1], top.values)
    assert torch.equal(res.top_ids[-1], top.indices)
    assert torch.equal(res.next_prob[-1], logp.exp()[:-1].gather(-1, toks[0, 1:, None])[:, 0])
    assert torch.equal(res.kl[-1], torch.zeros_like(res.kl[-1]))
    assert res.watch_prob is not None
    assert torch.equal(res.watch_prob[-1], logp.exp()[:, [3, 40]])


def _reference(m, toks, sublayers: bool) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Lens logits [B, P, V] (float64) from the full cache, hand-written norm and W_U."""
    with torch.no_grad():
        _, cache = m.run_with_cache(toks)
    cfg = m.cfg
    resids = [cache["blocks.0.hook_resid_pre"]]
    for layer in range(cfg.n_layers):
        if sublayers and not cfg.attn_only:
            if cfg.parallel_attn_mlp:
                mid = cache["resid_pre", layer] + cache["attn_out", layer]
            else:
                mid = cache["resid_mid", layer]
            resids.append(mid)
        resids.append(cache["resid_post", layer])
    return torch.stack([manual_unembed(m, manual_norm(m, r))[0] for r in resids])


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("sublayers", [False, True])
def test_every_boundary_matches_cache_norm_and_unembed(arch: str, sublayers: bool) -> None:
    m = tiny(arch, scale=3.0)
    toks = tokens(m.cfg.d_vocab)
    ref = _reference(m, toks, sublayers)
    bounds, logits = lens_logits(m, toks, sublayers=sublayers)
    assert len(bounds) == ref.shape[0]
    n_mid = 0 if (not sublayers or m.cfg.attn_only) else m.cfg.n_layers
    assert len(bounds) == 1 + m.cfg.n_layers + n_mid
    assert (logits[:, 0].double() - ref).abs().max() < 1e-4

    res = logit_lens(m, toks, k=5, watch=["0", "17"], sublayers=sublayers)
    logp = ref.log_softmax(-1)
    p = logp.exp()
    ent = -(p * logp).sum(-1)
    kl = (p[-1] * (logp[-1] - logp)).sum(-1)
    assert torch.allclose(res.entropy.double(), ent, atol=1e-4)
    assert torch.allclose(res.kl.double(), kl, atol=1e-4)
    assert torch.allclose(res.top_probs.double(), p.topk(5).values, atol=1e-5)
    order = ref.argsort(-1, descending=True)  # brute-force ranks: where the token sorts
    rank_of = order.argsort(-1) + 1  # [B, P, V]: rank of each token id
    nxt = toks[0, 1:]
    assert torch.equal(
        res.next_rank, rank_of[:, :-1].gather(-1, nxt.expand(len(ref), -1)[..., None])[..., 0]
    )
    assert res.watch_rank is not None
    assert torch.equal(res.watch_rank, rank_of[:, :, [0, 17]])
    assert torch.equal(res.top_ids, order[..., :5])


def test_matches_transformers_hidden_states_through_ln_f_and_lm_head(tmp_path: Path) -> None:
    hf: Any = make_checkpoint("gpt2", tmp_path)
    ours = load_model(tmp_path)
    toks = torch.randint(0, VOCAB, (2, 13), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        hs = hf(toks, output_hidden_states=True).hidden_states
        n = len(hs) - 1
        # transformers applies ln_f to its last hidden state already.
        ref = [hf.lm_head(hf.transformer.ln_f(h)) for h in hs[:n]] + [hf.lm_head(hs[n])]
        final = hf(toks).logits
    bounds, logits = lens_logits(ours, toks)
    assert [b.label for b in bounds] == ["embed"] + [f"L{i}.post" for i in range(n)]
    for i, r in enumerate(ref):
        assert (logits[i] - r).abs().max() < 1e-4, bounds[i].label
    assert (logits[-1] - final).abs().max() < 1e-4
    res = logit_lens(ours, toks[0], k=3)
    assert torch.equal(res.top_ids, torch.stack(ref)[:, 0].topk(3).indices)


def test_boundaries_and_hooks() -> None:
    m = tiny("gpt2", n_layers=2)
    labels = [b.label for b in lens_boundaries(m.cfg, sublayers=True)]
    assert labels == ["embed", "L0.mid", "L0.post", "L1.mid", "L1.post"]
    res = logit_lens(m, tokens(m.cfg.d_vocab, 5), sublayers=True)
    assert res.hooks[1] == "blocks.0.hook_resid_mid"
    assert [b.label for b in lens_boundaries(tiny("attn_only").cfg, sublayers=True)] == [
        "embed",
        "L0.post",
        "L1.post",
        "L2.post",
    ]


def test_zero_layer_model_lens_is_its_output() -> None:
    m = tiny("gpt2", n_layers=0)
    toks = tokens(m.cfg.d_vocab, 6)
    bounds, logits = lens_logits(m, toks)
    assert [b.label for b in bounds] == ["embed"]
    with torch.no_grad():
        assert torch.equal(logits[0], m(toks))


def test_layer_predictions_and_rankings_watch_read_one_position() -> None:
    m = tiny("gpt2", tokenizer=True, scale=3.0)
    res = logit_lens(m, "The keys to the cabinet", k=4, watch=[" is", " are"])
    _, logits = lens_logits(m, torch.tensor([res.token_ids]))
    p = logits[:, 0].softmax(-1)
    for pos in (0, 3, -1):
        preds = res.layer_predictions(pos)
        t = pos % len(res.token_ids)
        assert [x.ids for x in preds] == p[:, t].topk(4).indices.tolist()
        w = res.rankings_watch(pos)
        ids = [m.to_single_token(" is"), m.to_single_token(" are")]
        assert w.ids == ids and w.position == t
        row = logits[:, 0, t]
        want = (row[:, None, :] > row[:, ids][:, :, None]).sum(-1) + 1
        assert w.rank == want.tolist()
        assert torch.allclose(torch.tensor(w.prob), p[:, t][:, ids], atol=1e-6)
