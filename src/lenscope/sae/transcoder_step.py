"""One training step of a transcoder stack: losses, backward, decoder constraint, Adam.

Losses are divided by the *global* batch, so data-parallel ranks sum their gradients into
exactly the 1-process gradient (as the SAE step does). Per layer l, with target y_l and the
prediction p_l:
    mse    = mean_l mse_scale_l * sum (p_l - y_l)^2 / (B d_out)     mse_scale_l = 1 / var(y_l)
    auxk   = auxk_coef * mean_l |e_hat_l - e_l|^2 / |e_l - mean e_l|^2   (TopK, BatchTopK: e_hat
             decoded from the top-k_aux pre-activations of the dead latents, e = y - p)
    l1     = l1_coefficient * sum f / (B d_out)                          (ReLU)
    l0     = l0_coefficient * sum H(pre - t) / B                         (JumpReLU, t trained
             through the straight-through estimator of Rajamanoharan et al.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.sae.config import TrainConfig
from lenscope.sae.distributed import Comm
from lenscope.sae.optim import Adam
from lenscope.sae.sparse_ops import Codes, gather_preacts, sparse_decode
from lenscope.sae.step import TrainState
from lenscope.sae.transcoder_stack import TranscoderStack, jumprelu_ste, step_ste


@dataclass(frozen=True)
class SparsityConfig:
    """The penalties of the ReLU (L1) and JumpReLU (L0, bandwidth of the estimator) runs."""

    l1_coefficient: float = 1.0
    l0_coefficient: float = 1e-3
    bandwidth: float = 1e-3

    def to_dict(self) -> dict[str, float]:
        return {
            "l1_coefficient": self.l1_coefficient,
            "l0_coefficient": self.l0_coefficient,
            "bandwidth": self.bandwidth,
        }


@dataclass
class TranscoderStepMetrics:
    loss: float
    nmse: float  # FVU over all layers' outputs in this batch
    nmse_layers: list[float]
    l0: float  # mean active latents per token per layer
    auxk_loss: float
    dead_fraction: float


def _local_top(relu: Tensor, n: int, k: int) -> Tensor:
    """[L, min(n, B*S)]: per layer, the n largest values of relu [B, L, S], exactly.

    Candidates are each row's 4k largest; that is exact when every row's 4k-th value lies below
    the n-th candidate (no row can hold more); other layers fall back to the whole batch."""
    L, S = relu.shape[1], relu.shape[2]
    flat = relu.transpose(0, 1)  # [L, B, S]
    m = min(S, 4 * k)
    rowtop = flat.topk(m, dim=-1, sorted=False).values  # [L, B, m]
    cand = rowtop.reshape(L, -1)
    top = cand.topk(min(n, cand.shape[1]), dim=1, sorted=False).values
    if m < S:
        ok = (rowtop.amin(-1) < top.amin(1, keepdim=True)).all(1)
        for i in (~ok).nonzero().flatten().tolist():
            full = flat[i].reshape(-1)
            top[i] = full.topk(top.shape[1], sorted=False).values
    return top


def _batch_kth(comm: Comm, relu: Tensor, n: int, k: int) -> Tensor:
    """[L]: per layer, the n-th largest value of relu [B, L, S] over the global batch."""
    L = relu.shape[1]
    top = _local_top(relu, n, k)
    m = top.shape[1]
    if comm.active:
        pad = top.new_full((L, n - m), float("-inf"))
        got = comm.all_gather_cat(torch.cat([top, pad], 1)[None])  # [world, L, n]
        top = got.transpose(0, 1).reshape(L, -1)
        top = top.topk(min(n, top.shape[1]), dim=1, sorted=False).values
    return top.amin(dim=1)


def activations(
    stack: TranscoderStack, pre: Tensor, sp: SparsityConfig, comm: Comm, global_batch: int
) -> tuple[Tensor, Tensor | None]:
    """(training activations [B, L, S], the L0 penalty's step function or None)."""
    c = stack.cfg
    if c.activation == "relu":
        return pre.relu(), None
    if c.activation == "jumprelu":
        assert stack.log_threshold is not None
        t = stack.log_threshold.exp()
        return jumprelu_ste(pre, t, sp.bandwidth), step_ste(pre, t, sp.bandwidth)
    assert c.k is not None
    with torch.no_grad():
        if c.activation == "topk":
            kth = pre.topk(c.k, dim=-1).values[..., -1:]
            mask = pre >= kth
        else:  # batchtopk: the batch's (tokens * k) largest per layer
            relu = pre.detach().relu()
            t = _batch_kth(comm, relu, global_batch * c.k, c.k)
            mask = relu >= t[None, :, None]
    return torch.where(mask, pre, torch.zeros_like(pre)).relu(), None


def compute_losses(
    stack: TranscoderStack,
    x: Tensor,
    y: Tensor,
    cfg: TrainConfig,
    sp: SparsityConfig,
    state: TrainState,
    mse_scale: Tensor,
    dead: Tensor,
    global_batch: int,
    comm: Comm,
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """(loss, fired [L, S], statistics to sum over ranks) for this rank's x, y [B, L, d].

    Per-layer TopK and BatchTopK sets train through the SAE trainer's sparse kernels (the
    encoder's dense matmul only picks the latents; gradients touch the selected ones), unless
    `cfg.dense`; ReLU, JumpReLU and cross-layer sets through the dense path."""
    c = stack.cfg
    sparse = c.activation in ("topk", "batchtopk") and not cfg.dense and not c.cross_layer
    if sparse:
        out, fired, stats, aux_parts = _sparse_forward(stack, x, dead, cfg, comm, global_batch)
        penalty = None
    else:
        out, fired, stats, aux_parts, penalty = _dense_forward(
            stack, x, dead, cfg, sp, comm, global_batch
        )
    L, do = c.n_layers, c.d_out
    err = out - y
    sse_l = (err.detach() ** 2).sum(dim=(0, 2))  # [L]
    loss = (mse_scale * (err**2).sum(dim=(0, 2))).sum() / (global_batch * do * L)
    if penalty is not None:
        loss = loss + penalty
    if aux_parts is not None:
        e_hat, has_dead = aux_parts
        e = -err.detach()  # [B, L, d_out]
        moments = torch.cat([e.sum(0), sse_l[:, None]], 1).to(torch.float64)  # [L, d+1]
        comm.all_reduce_sum_(moments)
        var = moments[:, -1] - (moments[:, :-1] ** 2).sum(1) / global_batch  # [L]
        has = (has_dead & (var > 0)).to(x.dtype)
        per = ((e_hat - e) ** 2).sum(dim=(0, 2)) / var.clamp_min(1e-30).to(x.dtype)
        aux = cfg.auxk_coef * (per * has).sum() / L
        stats["auxk"] = aux.detach().to(torch.float64).reshape(())
        loss = loss + aux
    stats["sse"] = sse_l.to(torch.float64)
    stats["sum_y"] = y.detach().sum(0).to(torch.float64).reshape(-1)
    stats["sum_y2"] = (y.detach() ** 2).sum(dim=(0, 2)).to(torch.float64)
    return loss, fired, stats


def _uses_auxk(stack: TranscoderStack, cfg: TrainConfig, dead: Tensor) -> bool:
    return stack.cfg.activation in ("topk", "batchtopk") and cfg.use_auxk and bool(dead.any())


def _dense_forward(
    stack: TranscoderStack,
    x: Tensor,
    dead: Tensor,
    cfg: TrainConfig,
    sp: SparsityConfig,
    comm: Comm,
    global_batch: int,
) -> tuple[Tensor, Tensor, dict[str, Tensor], tuple[Tensor, Tensor] | None, Tensor | None]:
    c = stack.cfg
    L, do = c.n_layers, c.d_out
    pre = stack.pre_acts(x)
    acts, step = activations(stack, pre, sp, comm, global_batch)
    out = stack.decode(acts, x)
    penalty = None
    if c.activation == "relu":
        penalty = sp.l1_coefficient * acts.sum() / (global_batch * do * L)
    if step is not None:
        penalty = sp.l0_coefficient * step.sum() / (global_batch * L)
    stats: dict[str, Tensor] = {}
    aux_parts = None
    if _uses_auxk(stack, cfg, dead):
        k_aux = cfg.resolved_auxk(c.d_in, c.d_sae)
        masked = pre.masked_fill(~dead[None], float("-inf"))
        vals, idx = masked.topk(min(k_aux, c.d_sae), dim=-1, sorted=False)
        aux_acts = torch.zeros_like(pre).scatter(-1, idx, vals.relu().nan_to_num(0.0))
        e_hat = torch.einsum("bls,lso->blo", aux_acts, stack.own_decoder())
        aux_parts = (e_hat, dead.any(1))
    if c.activation == "batchtopk":
        sel = acts.detach()
        pos = torch.where(sel > 0, sel, torch.full_like(sel, float("inf")))
        stats["min_selected"] = pos.amin(dim=(0, 2)).to(torch.float64)  # [L]
    active = acts.detach() > 0
    stats["l0"] = active.sum().to(torch.float64).reshape(())
    return out, active.any(0), stats, aux_parts, penalty


def _sparse_forward(
    stack: TranscoderStack,
    x: Tensor,
    dead: Tensor,
    cfg: TrainConfig,
    comm: Comm,
    global_batch: int,
) -> tuple[Tensor, Tensor, dict[str, Tensor], tuple[Tensor, Tensor] | None]:
    c = stack.cfg
    L, S, k = c.n_layers, c.d_sae, c.k
    assert k is not None
    with torch.no_grad():
        pre = stack.pre_acts(x)
        kth = (
            _batch_kth(comm, pre.relu(), global_batch * k, k)
            if c.activation == "batchtopk"
            else None
        )
    no_bias = torch.zeros(c.d_in, dtype=x.dtype, device=x.device)
    use_aux = _uses_auxk(stack, cfg, dead)
    outs, e_hats, fired, lows = [], [], [], []
    l0 = torch.zeros((), dtype=torch.float64, device=x.device)
    for i in range(L):
        p, xi = pre[:, i], x[:, i].contiguous()
        if kth is None:
            v, idx = p.topk(k, dim=-1, sorted=False)
            codes = Codes.from_topk(idx, v, S)
        else:
            r = p.relu()
            codes = Codes.from_mask(p, (r >= kth[i]) & (r > 0))
        vals = gather_preacts(p, xi, no_bias, stack.W_enc_T[i], stack.b_enc[i], codes).relu()
        out = sparse_decode(codes.with_values(vals), stack.W_dec[i]) + stack.b_dec[i]
        if stack.W_skip is not None:
            out = out + xi @ stack.W_skip[i]
        outs.append(out)
        active = vals.detach() > 0
        f = torch.zeros(S, dtype=torch.bool, device=x.device)
        f[codes.idx[active]] = True
        fired.append(f)
        l0 = l0 + active.sum().to(torch.float64)
        if kth is not None:
            pos = vals.detach()[active]
            lows.append(pos.min() if pos.numel() else p.new_tensor(float("inf")))
        if use_aux:
            e_hats.append(_aux_decode(stack, p, xi, no_bias, dead[i], cfg, i))
    stats: dict[str, Tensor] = {"l0": l0.reshape(())}
    if lows:
        stats["min_selected"] = torch.stack(lows).to(torch.float64)
    aux = (torch.stack(e_hats, 1), dead.any(1)) if use_aux else None
    return torch.stack(outs, 1), torch.stack(fired), stats, aux


def _aux_decode(
    stack: TranscoderStack,
    p: Tensor,
    xi: Tensor,
    no_bias: Tensor,
    dead: Tensor,
    cfg: TrainConfig,
    i: int,
) -> Tensor:
    """AuxK's reconstruction of layer i's error from its top-k_aux dead latents (no bias)."""
    c = stack.cfg
    dead_idx = dead.nonzero().flatten()
    if dead_idx.numel() == 0:
        return xi.new_zeros(xi.shape[0], c.d_out)
    k_aux = min(cfg.resolved_auxk(c.d_in, c.d_sae), dead_idx.numel())
    sub_v, sub_i = p.index_select(1, dead_idx).topk(k_aux, dim=-1, sorted=False)
    codes = Codes.from_topk(dead_idx[sub_i], sub_v, c.d_sae)
    ga = gather_preacts(p, xi, no_bias, stack.W_enc_T[i], stack.b_enc[i], codes).relu()
    return sparse_decode(codes.with_values(ga), stack.W_dec[i])


def train_step(
    stack: TranscoderStack,
    opt: Adam,
    x: Tensor,
    y: Tensor,
    cfg: TrainConfig,
    sp: SparsityConfig,
    state: TrainState,
    mse_scale: Tensor,
    comm: Comm,
    lr: float,
) -> TranscoderStepMetrics:
    """One optimisation step on this rank's share (x, y) of the global batch."""
    if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(y).all())):
        raise InputError(
            "the activations contain NaN or infinite values; the model produces non-finite "
            "activations at the MLP hooks (check the model and dtype)"
        )
    L, do = stack.cfg.n_layers, stack.cfg.d_out
    global_batch = x.shape[0] * comm.world
    dead = (state.tokens_since_fired > cfg.resolved_dead_tokens()).to(x.device)
    loss, fired, stats = compute_losses(
        stack, x, y, cfg, sp, state, mse_scale, dead, global_batch, comm
    )
    opt.lr = lr
    opt.zero_grad()
    loss.backward()
    params = [p for p in stack.parameters() if p.requires_grad]
    comm.all_reduce_grads_(params)
    stack.remove_parallel_decoder_grad()
    if cfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    opt.step()
    stack.set_decoder_unit_norm()
    zero = torch.zeros((), dtype=torch.float64, device=x.device)
    head = torch.stack([stats["l0"], stats.get("auxk", zero), loss.detach().to(torch.float64)])
    buf = torch.cat(
        [head, stats["sse"], stats["sum_y2"], stats["sum_y"], fired.reshape(-1).to(torch.float64)]
    )
    comm.all_reduce_sum_(buf)
    l0, auxk, tot = (float(v) for v in buf[:3])
    o = 3
    sse, sy2 = buf[o : o + L], buf[o + L : o + 2 * L]
    sum_y = buf[o + 2 * L : o + 2 * L + L * do].view(L, do)
    fired_all = buf[o + 2 * L + L * do :].view(L, -1) > 0
    sst = sy2 - (sum_y**2).sum(1) / global_batch
    state.tokens_since_fired += global_batch
    state.tokens_since_fired[fired_all.to(state.tokens_since_fired.device)] = 0
    if "min_selected" in stats:
        low = comm.all_reduce_min_(stats["min_selected"].clone())
        ok = torch.isfinite(low)
        with torch.no_grad():
            t = stack.threshold
            new = t * (1 - cfg.threshold_lr) + cfg.threshold_lr * low.to(t.dtype)[:, None]
            t.copy_(torch.where(ok[:, None], new, t))
    state.step += 1
    layers = [float(a / b) if b > 0 else float("nan") for a, b in zip(sse, sst, strict=True)]
    total_sst = float(sst.sum())
    return TranscoderStepMetrics(
        loss=tot,
        nmse=float(sse.sum()) / total_sst if total_sst > 0 else float("nan"),
        nmse_layers=layers,
        l0=l0 / (global_batch * L),
        auxk_loss=auxk,
        dead_fraction=float(dead.float().mean()),
    )
