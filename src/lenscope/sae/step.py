"""One training step: losses (MSE, AuxK, multi-TopK, L1), backward, decoder constraint, Adam.

All losses live in the (optionally normalised) activation space and are divided by the *global*
batch size, so data-parallel ranks sum their gradients into exactly the 1-process gradient.
    mse    = mse_scale * sum (recon - x)^2 / (B d)         mse_scale = 1 / per-dim variance
    auxk   = auxk_coef * |e_hat - e|^2 / |e - mean e|^2     e = x - recon (detached); e_hat is
             decoded (no bias) from the top-k_aux pre-activations among dead latents
    multi  = multi_topk_coef * mse of the top-4k reconstruction
    l1     = l1_coefficient * sqrt(mse_scale) * sum_i z_i / (B d)      (ReLU baseline)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.linalg import linear, linear_t
from lenscope.sae.config import TrainConfig
from lenscope.sae.distributed import Comm
from lenscope.sae.model import SparseAutoencoder
from lenscope.sae.optim import Adam
from lenscope.sae.sparse_ops import Codes, gather_preacts, sparse_decode


@dataclass
class TrainState:
    """Everything besides parameters and Adam moments that a resumed run needs."""

    step: int = 0
    mse_scale: float = 1.0
    tokens_since_fired: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))


@dataclass
class StepMetrics:
    loss: float
    nmse: float  # fraction of variance unexplained on this batch
    l0: float  # mean active latents per token
    auxk_loss: float
    dead_fraction: float  # dead latents (by the training window) before this step


def _kth_largest(comm: Comm) -> object:
    def kth(values: Tensor, n: int) -> Tensor:
        flat = values.flatten()
        m = min(n, flat.numel())
        top = flat.topk(m, sorted=False).values
        if comm.active:
            pad = top.new_full((n - m,), float("-inf"))
            top = comm.all_gather_cat(torch.cat([top, pad]))
            top = top.topk(min(n, top.numel()), sorted=False).values
        return top.min()

    return kth


def _sparse_recon(sae: SparseAutoencoder, codes: Codes, vals: Tensor) -> Tensor:
    return sparse_decode(codes.with_values(vals), sae.W_dec)


def compute_losses(
    sae: SparseAutoencoder,
    x: Tensor,
    cfg: TrainConfig,
    state: TrainState,
    dead: Tensor,
    global_batch: int,
    comm: Comm,
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """(total loss, fired-latent mask, statistics to sum over ranks) for local activations x."""
    arch = sae.arch
    k = sae.cfg.k
    d = sae.cfg.d_in
    denom = float(global_batch * d)
    xn = sae.normalize(x)[0]
    xc = xn - sae.b_dec
    with torch.no_grad():
        pre = linear_t(xc, sae.W_enc_T, sae.b_enc)
    stats: dict[str, Tensor] = {}
    aux_codes: Codes | None = None
    if cfg.use_auxk and arch.uses_k and bool(dead.any()):
        dead_idx = dead.nonzero().flatten()
        k_aux = min(cfg.resolved_auxk(d, sae.cfg.d_sae), dead_idx.numel())
        sub_v, sub_i = pre.index_select(1, dead_idx).topk(k_aux, dim=-1, sorted=False)
        aux_codes = Codes.from_topk(dead_idx[sub_i], sub_v, sae.cfg.d_sae)
    multi = cfg.multi_topk and arch.uses_k and k is not None
    if cfg.dense or not arch.sparse_training:
        pre_g = linear_t(xc, sae.W_enc_T, sae.b_enc)
        if arch.name == "relu":
            acts = pre_g.relu()
        else:
            main = arch.train_codes(pre, k, _kth_largest(comm))  # type: ignore[arg-type]
            mask = torch.zeros_like(pre, dtype=torch.bool)
            mask[main.row_ids(), main.idx] = True
            acts = torch.where(mask, pre_g, torch.zeros_like(pre_g)).relu()
        recon = linear(acts, sae.W_dec, sae.b_dec)
        fired = (acts > 0).any(0)
        l0 = (acts > 0).sum()
        loss = sae_mse(recon, xn, state.mse_scale, denom)
        if arch.name == "relu":
            loss = loss + cfg.l1_coefficient * state.mse_scale**0.5 * acts.sum() / denom
        if multi:
            assert k is not None
            kth = pre.topk(min(4 * k, sae.cfg.d_sae), dim=-1).values[:, -1:]
            acts4 = torch.where(pre >= kth, pre_g, torch.zeros_like(pre_g)).relu()
            r4 = linear(acts4, sae.W_dec, sae.b_dec)
            loss = loss + cfg.multi_topk_coef * sae_mse(r4, xn, state.mse_scale, denom)
        if aux_codes is not None:
            aux_mask = torch.zeros_like(pre, dtype=torch.bool)
            aux_mask[aux_codes.row_ids(), aux_codes.idx] = True
            aux_dense = torch.where(aux_mask, pre_g, torch.zeros_like(pre_g)).relu()
            e_hat = linear(aux_dense, sae.W_dec)
    else:
        if multi:
            assert k is not None
            v4, i4 = pre.topk(min(4 * k, sae.cfg.d_sae), dim=-1, sorted=False)
            codes4 = Codes.from_topk(i4, v4, sae.cfg.d_sae)
            g4 = gather_preacts(pre, xn, sae.b_dec, sae.W_enc_T, sae.b_enc, codes4).view(v4.shape)
            sub = v4.topk(k, dim=-1, sorted=False).indices
            main = Codes.from_topk(i4.gather(1, sub), v4.gather(1, sub), sae.cfg.d_sae)
            gv = g4.gather(1, sub).reshape(-1)
            r4 = _sparse_recon(sae, codes4, g4.reshape(-1).relu()) + sae.b_dec
        else:
            main = arch.train_codes(pre, k, _kth_largest(comm))  # type: ignore[arg-type]
            gv = gather_preacts(pre, xn, sae.b_dec, sae.W_enc_T, sae.b_enc, main)
        vals = gv.relu()
        recon = _sparse_recon(sae, main, vals) + sae.b_dec
        active = vals.detach() > 0
        fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=x.device)
        fired[main.idx[active]] = True
        l0 = active.sum()
        loss = sae_mse(recon, xn, state.mse_scale, denom)
        if multi:
            loss = loss + cfg.multi_topk_coef * sae_mse(r4, xn, state.mse_scale, denom)
        if aux_codes is not None:
            ga = gather_preacts(pre, xn, sae.b_dec, sae.W_enc_T, sae.b_enc, aux_codes).relu()
            e_hat = _sparse_recon(sae, aux_codes, ga)
    if arch.name == "batchtopk":
        pos = main.val[main.val > 0]
        low = pos.min() if pos.numel() else pre.new_tensor(float("inf"))
        stats["min_selected"] = low.detach().to(torch.float64)
    e = (xn - recon).detach()
    sq = (e * e).sum()
    stats["sse"] = sq.to(torch.float64)
    stats["sum_x"] = xn.detach().sum(0).to(torch.float64)
    stats["sum_x2"] = (xn.detach() ** 2).sum().to(torch.float64)
    stats["l0"] = l0.to(torch.float64)
    if aux_codes is not None:
        # |e - mean e|^2 over the global batch, from sums all ranks share
        moments = torch.cat([e.sum(0), sq.reshape(1)]).to(torch.float64)
        comm.all_reduce_sum_(moments)
        var = float(moments[-1] - (moments[:-1] ** 2).sum() / global_batch)
        aux = ((e_hat - e) ** 2).sum() / var if var > 0 else e_hat.sum() * 0
        aux = cfg.auxk_coef * aux
        stats["auxk"] = aux.detach().to(torch.float64).reshape(())
        loss = loss + aux
    return loss, fired, stats


def sae_mse(recon: Tensor, x: Tensor, mse_scale: float, denom: float) -> Tensor:
    return mse_scale * ((recon - x) ** 2).sum() / denom


def train_step(
    sae: SparseAutoencoder,
    opt: Adam,
    x: Tensor,
    cfg: TrainConfig,
    state: TrainState,
    comm: Comm,
    lr: float,
) -> StepMetrics:
    """One optimisation step on this rank's share x of the global batch."""
    if not bool(torch.isfinite(x).all()):
        raise InputError(
            "the activations contain NaN or infinite values; the model produces non-finite "
            "activations at this hook (check the model and dtype)"
        )
    global_batch = x.shape[0] * comm.world
    dead_window = cfg.resolved_dead_tokens()
    dead = state.tokens_since_fired > dead_window
    loss, fired, stats = compute_losses(sae, x, cfg, state, dead, global_batch, comm)
    opt.lr = lr
    opt.zero_grad()
    loss.backward()
    params = [p for p in sae.parameters() if p.requires_grad]
    comm.all_reduce_grads_(params)
    sae.remove_parallel_decoder_grad()
    if cfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    opt.step()
    sae.set_decoder_unit_norm()
    # statistics, summed over ranks in one call
    keys = ["sse", "sum_x2", "l0", "auxk"]
    zero = torch.zeros((), dtype=torch.float64, device=x.device)
    scalars = torch.stack([stats.get(kk, zero) for kk in keys])
    total_loss = loss.detach().to(torch.float64).reshape(1)
    buf = torch.cat([scalars, total_loss, stats["sum_x"], fired.to(torch.float64)])
    comm.all_reduce_sum_(buf)
    sse, sx2, l0, auxk, tot = (float(v) for v in buf[:5])
    d = sae.cfg.d_in
    sum_x = buf[5 : 5 + d]
    fired_all = buf[5 + d :] > 0
    sst = sx2 - float((sum_x**2).sum()) / global_batch
    state.tokens_since_fired += global_batch
    state.tokens_since_fired[fired_all] = 0
    if "min_selected" in stats:
        _update_threshold(sae, stats["min_selected"], cfg, comm)
    state.step += 1
    return StepMetrics(
        loss=tot,
        nmse=sse / sst if sst > 0 else float("nan"),
        l0=l0 / global_batch,
        auxk_loss=auxk,
        dead_fraction=float(dead.float().mean()),
    )


def _update_threshold(sae: SparseAutoencoder, low: Tensor, cfg: TrainConfig, comm: Comm) -> None:
    """BatchTopK's inference threshold: EMA of the smallest selected activation (global)."""
    low = comm.all_reduce_min_(low.reshape(1).clone())[0]
    if bool(torch.isfinite(low)):
        with torch.no_grad():
            sae.threshold.mul_(1 - cfg.threshold_lr).add_(cfg.threshold_lr * low)
