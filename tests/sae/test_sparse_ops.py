"""The sparse kernels compute exactly what the dense reference path computes (values and grads)."""

from __future__ import annotations

import pytest
import torch

from lenscope.sae import SAEConfig, SparseAutoencoder, TrainConfig
from lenscope.sae.distributed import Comm
from lenscope.sae.sparse_ops import Codes, gather_preacts, sparse_decode
from lenscope.sae.step import TrainState, compute_losses

D = torch.float64


def _leaves(n: int = 24, d: int = 8, m: int = 40) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g, dtype=D, requires_grad=True)
    b_dec = torch.randn(d, generator=g, dtype=D, requires_grad=True)
    w_enc_t = torch.randn(m, d, generator=g, dtype=D, requires_grad=True)
    b_enc = torch.randn(m, generator=g, dtype=D, requires_grad=True)
    w_dec = torch.randn(m, d, generator=g, dtype=D, requires_grad=True)
    target = torch.randn(n, d, generator=g, dtype=D)
    return x, b_dec, w_enc_t, b_enc, w_dec, target


def _grads(loss: torch.Tensor, leaves: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, leaves))


def test_codes_dense_matches_loop() -> None:
    pre = torch.randn(5, 7, generator=torch.Generator().manual_seed(1))
    mask = pre > 0.3
    mask[2] = False  # an empty row
    codes = Codes.from_mask(pre, mask)
    want = torch.zeros(5, 7)
    for r in range(5):
        for c in range(7):
            if mask[r, c]:
                want[r, c] = pre[r, c]
    assert torch.equal(codes.dense(), want)
    assert torch.equal(codes.l0(), mask.sum(1).float())


@pytest.mark.parametrize("kind", ["topk", "mask"])
def test_sparse_encoder_and_decoder_grads_equal_dense(kind: str) -> None:
    x, b_dec, w_enc_t, b_enc, w_dec, target = _leaves()
    leaves = (x, b_dec, w_enc_t, b_enc, w_dec)
    with torch.no_grad():
        pre = (x - b_dec) @ w_enc_t.t() + b_enc
    if kind == "topk":
        v, i = pre.topk(5, dim=-1, sorted=False)
        codes = Codes.from_topk(i, v, pre.shape[1])
    else:  # variable counts per row, some rows empty (BatchTopK / threshold shape)
        mask = pre > pre.flatten().kthvalue(pre.numel() - 60).values
        mask[3] = False
        codes = Codes.from_mask(pre, mask)
    vals = gather_preacts(pre, x, b_dec, w_enc_t, b_enc, codes).relu()
    recon = sparse_decode(codes.with_values(vals), w_dec)
    sparse_loss = ((recon - target) ** 2).sum()
    sel = torch.zeros_like(pre, dtype=torch.bool)
    sel[codes.row_ids(), codes.idx] = True
    dense_pre = (x - b_dec) @ w_enc_t.t() + b_enc
    acts = torch.where(sel, dense_pre, torch.zeros_like(dense_pre)).relu()
    dense_loss = ((acts @ w_dec - target) ** 2).sum()
    torch.testing.assert_close(sparse_loss, dense_loss, rtol=1e-12, atol=1e-12)
    for a, b in zip(_grads(sparse_loss, leaves), _grads(dense_loss, leaves), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("arch", "multi"), [("topk", False), ("topk", True), ("batchtopk", False)])
def test_training_losses_sparse_equal_dense(arch: str, multi: bool) -> None:
    cfg = SAEConfig(d_in=8, d_sae=48, architecture=arch, k=3)
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(2), dtype=D)
    dead = torch.zeros(48, dtype=torch.bool)
    dead[::3] = True  # AuxK active
    out = []
    for dense in (False, True):
        sae = SparseAutoencoder(cfg, dtype=D, seed=3)
        sae.init_from_data(x)
        tc = TrainConfig(multi_topk=multi, dense=dense, auxk=4)
        state = TrainState(mse_scale=0.7, tokens_since_fired=torch.zeros(48, dtype=torch.long))
        loss, fired, stats = compute_losses(sae, x, tc, state, dead, 32, Comm())
        loss.backward()
        out.append((loss.detach(), fired, stats, [p.grad for p in sae.parameters()]))
    (l1, f1, s1, g1), (l2, f2, _s2, g2) = out
    assert "auxk" in s1 and float(s1["auxk"]) > 0
    torch.testing.assert_close(l1, l2, rtol=1e-12, atol=1e-12)
    assert torch.equal(f1, f2)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("fused", [True, False])
def test_adam_matches_the_textbook_update(fused: bool) -> None:
    from lenscope.sae.optim import Adam

    g = torch.Generator().manual_seed(4)
    p = torch.nn.Parameter(torch.randn(5, 3, generator=g, dtype=D))
    ref = p.detach().clone()
    m = torch.zeros_like(ref)
    v = torch.zeros_like(ref)
    opt = Adam([p], lr=0.1, betas=(0.8, 0.95), eps=1e-6)
    opt.fused = fused
    for t in range(1, 6):
        grad = torch.randn(5, 3, generator=g, dtype=D)
        opt.lr = 0.1 / t
        p.grad = grad.clone()
        opt.step()
        m = 0.8 * m + 0.2 * grad
        v = 0.95 * v + 0.05 * grad**2
        ref = ref - (0.1 / t) * (m / (1 - 0.8**t)) / ((v / (1 - 0.95**t)).sqrt() + 1e-6)
        torch.testing.assert_close(p.detach(), ref, rtol=1e-12, atol=1e-12)
