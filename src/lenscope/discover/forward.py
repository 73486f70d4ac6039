"""The model's forward pass with one input per receiver, so that single edges can be ablated.

The model's attention reads one normalised residual for all heads' queries, keys and values; here
every receiver (a head's q, k or v input, an MLP's input, the logits) gets its own:

    input_r = resid - sum_u  a[u, r] * (out_u - ablated_u)

where `resid` is this run's residual stream where r reads it (the sum of the upstream outputs
and the biases), `out_u` upstream node u's output in this run, `ablated_u` its ablated value and
`a[u, r]` in [0, 1] how much of edge u -> r is ablated (1 = the edge carries the ablated value).
With `a = 0` this is the model's own forward (checked against it in the tests). The blocks'
weights, norms and rotary embeddings are read; no hook of the model runs (another user of the
same model may have hooks attached), and the model is never changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from lenscope.discover.graph import EdgeGraph
from lenscope.linalg import linear
from lenscope.model.layers import MLP, Block
from lenscope.model.norms import Norm
from lenscope.model.transformer import HookedTransformer

# (upstream indices, their outputs [k, batch, pos, d]) -> the outputs to use (or None: keep)
OutputFn = Callable[[slice, Tensor], Tensor | None]
# (receiver indices, their inputs [k, batch, pos, d]) -> the inputs to use (or None: keep)
InputFn = Callable[[slice, Tensor], Tensor | None]


@dataclass
class ForwardState:
    """Where a forward stands when layer `layer` starts: every upstream output so far (groups of
    [k, batch, pos, d]) and the residual stream. Runs resume from a clean run's states."""

    layer: int
    outs: list[Tensor] = field(default_factory=list)
    resid: Tensor | None = None

    def stacked(self) -> Tensor:
        return torch.cat(self.outs, 0)


@dataclass
class EdgeRun:
    logits: Tensor  # [batch, pos, d_vocab]
    outputs: Tensor | None = None  # [n_upstream, batch, pos, d] when asked for
    states: list[ForwardState] | None = (
        None  # one per layer (and one before the logits) when asked for
    )


class EdgeForward:
    """Runs `model` with per-receiver inputs over `graph` (`EdgeGraph.of(model.cfg)` by default)."""

    def __init__(self, model: HookedTransformer, graph: EdgeGraph | None = None) -> None:
        self.model = model
        self.graph = graph or EdgeGraph.of(model.cfg)
        cfg = model.cfg
        self.blocks: list[Block] = list(model.blocks)  # type: ignore[arg-type]
        self.w = [
            (b.attn.W_Q.detach(), b.attn.W_K.detach(), b.attn.W_V.detach(), b.attn.W_O.detach())
            for b in self.blocks
        ]
        self.b = [
            (b.attn.b_Q.detach(), b.attn.b_K.detach(), b.attn.b_V.detach(), b.attn.b_O.detach())
            for b in self.blocks
        ]
        self.scale = 1.0 / cfg.attn_scale
        # every weight detached: gradients flow to activations only, never into parameters
        self.W_E = model.W_E.detach()
        self.W_pos = model.W_pos.detach() if model.W_pos is not None else None
        self.W_U = model.W_U.detach()
        self.b_U = model.b_U.detach() if model.b_U is not None else None
        self.ln1 = [_norm_params(b.ln1) for b in self.blocks]
        self.ln2 = [_norm_params(b.ln2) for b in self.blocks]
        self.ln_final = _norm_params(model.ln_final)
        self.mlps = [_mlp_params(b.mlp) for b in self.blocks]

    def run(
        self,
        tokens: Tensor,
        ablate: Tensor | None = None,
        ablated: Tensor | None = None,
        *,
        start: ForwardState | None = None,
        on_outputs: OutputFn | None = None,
        on_inputs: InputFn | None = None,
        keep_outputs: bool = False,
        keep_states: bool = False,
        read_at: Tensor | None = None,
    ) -> EdgeRun:
        """tokens [batch, pos] (right-padded rows are fine: attention is causal).

        `ablate` [n_upstream, n_receivers] (or [batch, n_upstream, n_receivers], one mask per
        row) says how much of each edge is ablated; `ablated` [n_upstream, batch | 1, pos | 1, d]
        the values ablated edges carry. `start` resumes from a state of a clean run (the layers
        before it are not recomputed: only valid when `ablate` is zero on edges into them).
        With `read_at` [batch] (one position per row) the logits are computed there only:
        [batch, 1, d_vocab]."""
        g = self.graph
        b, p = tokens.shape
        st = (
            ForwardState(0)
            if start is None
            else ForwardState(start.layer, list(start.outs), start.resid)
        )
        cos_sin = None
        for block in self.blocks:
            if block.attn.rotary is not None:
                pos_ids = torch.arange(p, device=tokens.device).expand(b, p)
                cos_sin = block.attn.rotary.cos_sin(pos_ids, self.w[0][0].dtype)
                break
        if st.resid is None:
            emb = [F.embedding(tokens, self.W_E)]
            if g.has_pos:
                assert self.W_pos is not None
                emb.append(self.W_pos[:p].expand(b, p, -1))
            first = torch.stack(emb)
            first = _apply(on_outputs, slice(0, g.n_inputs), first)
            st.outs.append(first)
            st.resid = first.sum(0)
        states: list[ForwardState] = []
        diff_cache: list[Tensor] = []  # the stacked out - ablated of the first n upstream nodes

        def inputs(recv: slice, resid: Tensor, at: Tensor | None = None) -> Tensor:
            n_recv = recv.stop - recv.start
            base = resid.expand(n_recv, *resid.shape)
            if ablate is None or ablated is None:
                return base
            a = ablate[..., recv]
            n = int(sum(o.shape[0] for o in st.outs))
            a = a[..., :n, :]
            if not bool((a != 0).any()):
                return base
            if not diff_cache or diff_cache[0].shape[0] != n:
                diff_cache[:] = [st.stacked() - ablated[:n]]
                if at is not None:
                    rows = torch.arange(b, device=at.device)
                    diff_cache[:] = [diff_cache[0][:, rows, at][:, :, None]]
            d = diff_cache[0]
            if a.ndim == 3:
                return base - torch.einsum("bur,ubpd->rbpd", a.to(d.dtype), d)
            return base - torch.einsum("ur,ubpd->rbpd", a.to(d.dtype), d)

        for layer in range(st.layer, g.n_layers):
            if keep_states:
                states.append(ForwardState(layer, list(st.outs), st.resid))
            block = self.blocks[layer]
            sl = g.attn_receivers(layer)
            x = _apply(on_inputs, sl, inputs(sl, st.resid))
            heads = self._heads(layer, _normalize(self.ln1[layer], x), cos_sin)
            heads = _apply(on_outputs, g.heads_upstream(layer), heads)
            st.outs.append(heads)
            st.resid = st.resid + heads.sum(0) + self.b[layer][3]
            if g.has_mlp:
                mlp = self.mlps[layer]
                assert mlp is not None
                r = g.mlp_receiver(layer)
                x = _apply(on_inputs, slice(r, r + 1), inputs(slice(r, r + 1), st.resid))
                out = mlp(_normalize(self.ln2[layer], x))
                out = _apply(
                    on_outputs, slice(g.mlp_upstream(layer), g.mlp_upstream(layer) + 1), out
                )
                st.outs.append(out)
                st.resid = st.resid + out[0]
        if keep_states:
            states.append(ForwardState(g.n_layers, list(st.outs), st.resid))
        last = len(g.receivers) - 1
        resid = st.resid
        if read_at is not None:
            resid = resid[torch.arange(b, device=resid.device), read_at][:, None]
            diff_cache.clear()
        x = _apply(on_inputs, slice(last, last + 1), inputs(slice(last, last + 1), resid, read_at))
        logits = linear(_normalize(self.ln_final, x[0]), self.W_U, self.b_U)
        return EdgeRun(
            logits,
            st.stacked() if keep_outputs else None,
            states if keep_states else None,
        )

    def _heads(self, layer: int, x: Tensor, cos_sin: tuple[Tensor, Tensor] | None) -> Tensor:
        """x [3*heads, batch, pos, d] (normalised q, k, v inputs) -> head outputs [h, b, p, d]."""
        h = self.graph.n_heads
        wq, wk, wv, wo = self.w[layer]
        bq, bk, bv, _ = self.b[layer]
        q = torch.einsum("hbpd,hde->bphe", x[:h], wq) + bq
        k = torch.einsum("hbpd,hde->bphe", x[h : 2 * h], wk) + bk
        v = torch.einsum("hbpd,hde->bphe", x[2 * h :], wv) + bv
        rotary = self.blocks[layer].attn.rotary
        if rotary is not None and cos_sin is not None:
            cos, sin = cos_sin
            q, k = rotary.rotate(q, cos, sin), rotary.rotate(k, cos, sin)
        z = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            is_causal=True,
            scale=self.scale,
        )
        return torch.einsum("bhpe,hed->hbpd", z, wo)


def _apply(fn: OutputFn | InputFn | None, sl: slice, x: Tensor) -> Tensor:
    if fn is None:
        return x
    out = fn(sl, x)
    return x if out is None else out


NormParams = tuple[str, float, Tensor | None, Tensor | None]  # kind, eps, weight, bias


def _norm_params(norm: Norm | None) -> NormParams:
    if norm is None or norm.w is None:
        return ("none", 0.0, None, None)
    return (norm.kind, norm.eps, norm.w.detach(), None if norm.b is None else norm.b.detach())


def _normalize(params: NormParams, x: Tensor) -> Tensor:
    """The norm of `x` (as `lenscope.model.norms.normalize`) with detached weights."""
    kind, eps, w, b = params
    if w is None:
        return x
    if kind == "LN":
        return F.layer_norm(x, (x.shape[-1],), w, b, eps)
    return F.rms_norm(x, (x.shape[-1],), w, eps)


def _mlp_params(mlp: object) -> Callable[[Tensor], Tensor] | None:
    """The block's MLP as a function of its (normalised) input, with detached weights, running
    none of its hooks."""
    if not isinstance(mlp, MLP):
        return None
    w_in, w_out = mlp.W_in.detach(), mlp.W_out.detach()
    b_in = None if mlp.b_in is None else mlp.b_in.detach()
    b_out = None if mlp.b_out is None else mlp.b_out.detach()
    w_gate = None if mlp.W_gate is None else mlp.W_gate.detach()
    act = mlp.act

    def run(x: Tensor) -> Tensor:
        lin = linear(x, w_in, b_in)
        post = act(linear(x, w_gate)) * lin if w_gate is not None else act(lin)
        return linear(post, w_out, b_out)

    return run
