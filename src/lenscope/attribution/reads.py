"""Read fields: where and how a reader looks at the residual stream, as a gradient field [b, p, d].

A reader (the question's output, a head's query/key/value, a neuron's input, a latent's encoder)
sees the stream through a normalisation (scale frozen) and a linear map, so its sensitivity to any
write is `write . field[position]`. Fields come from an *output gradient* of the reader (the loss
gradient at the head's z, the neuron's post-activation, ...): the global one from the backward pass,
or one restricted to a path through later nodes (composable traces).

Stream order (where writes land and reads happen): embeddings -1; layer l: resid_pre 4l, ln1 read
4l+0.5, head writes 4l+1, resid_mid 4l+2, ln2 read 4l+2.5 (4l+0.5 if parallel), neuron writes 4l+3,
resid_post 4l+4; the final norm reads after everything.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from lenscope.attribution.capture import Capture
from lenscope.attribution.experts import expert_inputs, expert_outputs, router_weights
from lenscope.attribution.frozen import norm_scale, pull, push
from lenscope.model.norms import Norm, normalize
from lenscope.nodes import DICTIONARY_SITES, LATENT_SITES, NodeId, NodeKind, latent_site

SITE_OFFSET = {
    "resid_pre": 0.0,
    "attn_out": 1.0,
    "resid_mid": 2.0,
    "mlp_out": 3.0,
    "resid_post": 4.0,
}
assert set(SITE_OFFSET) == set(LATENT_SITES)
# transcoder latents (`L3.transcoder.F12`) write where their layer's MLP writes (a cross-layer
# transcoder's also into every later MLP's output: see `latent_writes`)
SITE_OFFSET |= {site: 3.0 for site in DICTIONARY_SITES}
FINAL = math.inf


@dataclass
class Read:
    field: Tensor  # [b, p, d]
    order: float  # writes strictly before this stream position are upstream
    restrict: tuple[NodeKind, int] | None = None  # attn_out / mlp_out reads see one layer's writers
    # [b] parts of `input . gradient` due to the reader's own biases
    terms: dict[str, Tensor] = dataclasses.field(default_factory=dict)


def write_order(kind: NodeKind, layer: int | None, site: str | None = None) -> float:
    if kind in (NodeKind.EMBED, NodeKind.POS):
        return -1.0
    assert layer is not None
    if kind is NodeKind.HEAD:
        return 4.0 * layer + 1
    if kind in (NodeKind.NEURON, NodeKind.EXPERT):
        return 4.0 * layer + 3
    assert site is not None
    return 4.0 * layer + SITE_OFFSET[site]


def upstream(read: Read, kind: NodeKind, layer: int | None, site: str | None = None) -> bool:
    if read.restrict is not None:
        return kind is read.restrict[0] and layer == read.restrict[1]
    return write_order(kind, layer, site) < read.order


# ---- scales (cached per capture) -----------------------------------------------------------------
def scale1(cap: Capture, layer: int) -> Tensor:
    key = f"s1.{layer}"
    if key not in cap.cache:
        cap.cache[key] = norm_scale(cap.w.ln1(layer), cap.layers[layer].resid_pre)
    return cap.cache[key]


def scale2(cap: Capture, layer: int) -> Tensor:
    key = f"s2.{layer}"
    if key not in cap.cache:
        x = cap.layers[layer].ln2_in
        assert x is not None
        cap.cache[key] = norm_scale(cap.w.ln2(layer), x)
    return cap.cache[key]


def _rows(cap: Capture) -> Tensor:
    return torch.arange(cap.batch.size, device=cap.value.device)


# ---- post-sublayer norms (Gemma 2/3, OLMo-2) -----------------------------------------------------
def post_scale(cap: Capture, layer: int, which: str) -> tuple[Norm, Tensor] | None:
    """(norm, frozen scale [b, p, 1]) after the "attn" or "mlp" sublayer, None without one."""
    norm = cap.w.post_norm(layer, which)
    acts = cap.layers[layer]
    s = acts.s_attn_post if which == "attn" else acts.s_mlp_post
    if norm is None or s is None:
        return None
    return norm, s


def post_push(cap: Capture, layer: int, which: str, w: Tensor) -> Tensor:
    """A sublayer's raw write [b, p, d] as it lands in the residual stream: through the
    sublayer's post-norm with its scale frozen (linear), unchanged without one."""
    ns = post_scale(cap, layer, which)
    return w if ns is None else push(ns[0], ns[1], w)


def post_pull(cap: Capture, layer: int, which: str, g: Tensor) -> Tensor:
    """A read field [b, p, d] on the stream carried back to the sublayer's raw output."""
    ns = post_scale(cap, layer, which)
    return g if ns is None else pull(ns[0], ns[1], g)


# ---- heads --------------------------------------------------------------------------------------
def unrotate(cap: Capture, layer: int, g: Tensor) -> Tensor:
    """Carry a gradient at rotated q/k back to q/k before the rotary embedding (of `layer`'s
    own base: Gemma 3's local layers turn at another base than its global ones)."""
    rot = cap.w.blocks[layer].attn.rotary
    if rot is None:
        return g
    cos, sin = rot.cos_sin(cap.positions, g.dtype)
    return rot.rotate(g, cos, -sin)


def qk_pull(norm: Norm | None, scale: Tensor | None, g: Tensor) -> Tensor:
    """A gradient at normed queries or keys [b, p, H, dh] carried back through the q/k RMSNorm
    with its scale frozen (`g * w / scale`, RMSNorm does not centre). Per-head norms have a
    weight [dh] and scales [b, p, heads, 1]; norms over all heads at once (OLMo-2) a weight
    [heads * dh] and scales [b, p, 1]; grouped keys are expanded to the H query heads."""
    if norm is None or norm.w is None or scale is None:
        return g
    n_heads, dh = g.shape[-2:]
    w = norm.w.detach().to(g.dtype).reshape(-1, dh)
    if w.shape[0] not in (1, n_heads):
        w = w.repeat_interleave(n_heads // w.shape[0], dim=0)
    s = scale[..., None] if scale.ndim == 3 else scale
    if s.shape[2] not in (1, n_heads):
        s = s.repeat_interleave(n_heads // s.shape[2], dim=2)
    return g * w / s


def raw_scores(cap: Capture, layer: int) -> Tensor:
    """[b, H, q, k] the scores `q.k / attn_scale` before any soft-cap (cached)."""
    key = f"raw.{layer}"
    if key not in cap.cache:
        acts = cap.layers[layer]
        raw = torch.einsum("bqhe,bkhe->bhqk", acts.q, acts.k) / cap.model.cfg.attn_scale
        cap.cache[key] = raw
    return cap.cache[key]


def cap_slope(cap: Capture, layer: int) -> Tensor | None:
    """[b, H, q, k] the derivative of the attention soft-cap `c tanh(s / c)` at each raw score
    (Gemma 2), None without a cap."""
    c = cap.model.cfg.attn_scores_soft_cap
    if c <= 0:
        return None
    return 1 - torch.tanh(raw_scores(cap, layer) / c) ** 2


def head_input_grads(
    cap: Capture,
    layer: int,
    *,
    g_z: Tensor | None = None,
    keep: Tensor | None = None,
    dS: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients at q, k (before rotary) and v [b, p, H, dh] of every head of `layer`, from an
    output gradient at z (optionally only through the (query, key) pairs in `keep` [b, H, q, k])
    or from a gradient `dS` at the raw scores `q.k / attn_scale` (before any soft-cap).
    With q/k norms the gradients are at the queries and keys before them (`hook_q`, `hook_k`),
    carried back through the norms with their scales frozen."""
    acts = cap.layers[layer]
    a = acts.pattern
    if dS is None:
        assert g_z is not None
        dA = torch.einsum("bqhe,bkhe->bhqk", g_z, acts.v)
        am = a
        if keep is not None:
            dA, am = dA * keep, a * keep
        g_v = torch.einsum("bhqk,bqhe->bkhe", am, g_z)
        dS = a * (dA - (a * dA).sum(-1, keepdim=True))
        slope = cap_slope(cap, layer)
        if slope is not None:  # through the soft-cap: the true gradient at the raw score
            dS = dS * slope
    else:
        g_v = torch.zeros_like(acts.v)
    scale = cap.model.cfg.attn_scale
    g_q = unrotate(cap, layer, torch.einsum("bhqk,bkhe->bqhe", dS, acts.k) / scale)
    g_k = unrotate(cap, layer, torch.einsum("bhqk,bqhe->bkhe", dS, acts.q) / scale)
    attn = cap.w.blocks[layer].attn
    g_q = qk_pull(attn.q_norm, acts.s_q, g_q)
    g_k = qk_pull(attn.k_norm, acts.s_k, g_k)
    return g_q, g_k, g_v


def head_own_term(cap: Capture, layer: int, g: tuple[Tensor, Tensor, Tensor], via: str) -> Tensor:
    """[b] the part of `input . gradient` due to the head's own biases (b_Q/b_K/b_V and ln1's)."""
    w = cap.w
    ln = w.ln1(layer)
    lnb = None if ln.b is None else ln.b.detach().to(g[0].dtype)
    mats = {"q": (w.W_Q(layer), w.b_Q(layer)), "k": (w.W_K(layer), w.b_K(layer))}
    mats["v"] = (w.W_V(layer), w.b_V(layer))
    total = torch.zeros(g[0].shape[0], dtype=g[0].dtype, device=g[0].device)
    for name, gx in zip("qkv", g, strict=True):
        if name in via:
            W, bias = mats[name]
            own = bias if lnb is None else bias + torch.einsum("d,hde->he", lnb, W)
            total = total + (gx * own).sum((1, 2, 3))
    return total


def head_read(cap: Capture, layer: int, g: tuple[Tensor, Tensor, Tensor], via: str) -> Tensor:
    """Read field of a head's input(s) `via` (any of "q", "k", "v") from `head_input_grads`."""
    w = cap.w
    mats = {"q": w.W_Q(layer), "k": w.W_K(layer), "v": w.W_V(layer)}
    total = torch.zeros_like(cap.layers[layer].resid_pre)
    for name, gx in zip("qkv", g, strict=True):
        if name in via:
            total = total + torch.einsum("bphe,hde->bpd", gx, mats[name])
    return pull(w.ln1(layer), scale1(cap, layer), total)


# ---- neurons ------------------------------------------------------------------------------------
def neuron_input_grads(cap: Capture, layer: int, g_post: Tensor) -> tuple[Tensor, Tensor | None]:
    """(gradient at hook_pre, gradient at hook_pre_linear or None) from one at hook_post."""
    acts = cap.layers[layer]
    mlp = cap.w.blocks[layer].dense_mlp()
    assert acts.pre is not None and mlp is not None
    with torch.enable_grad():
        p = acts.pre.detach().requires_grad_(True)
        y = mlp.act(p)
        gy = g_post if acts.pre_lin is None else g_post * acts.pre_lin
        (g_pre,) = torch.autograd.grad(y, p, gy)
    g_lin = None if acts.pre_lin is None else g_post * y.detach()
    return g_pre, g_lin


def neuron_read(cap: Capture, layer: int, g_post: Tensor) -> tuple[Tensor, Tensor]:
    """(read field, [b] part of `input . gradient` due to the MLP's own biases)."""
    g_pre, g_lin = neuron_input_grads(cap, layer, g_post)
    W_in, W_gate, _, _ = cap.w.mlp(layer)
    b_in = cap.w.b_in(layer)
    ln = cap.w.ln2(layer)
    lnb = None if ln.b is None else ln.b.detach().to(g_pre.dtype)
    own_in = (lnb @ W_in if lnb is not None else 0.0) + (b_in if b_in is not None else 0.0)
    if W_gate is None:
        v = g_pre @ W_in.T
        own = (g_pre * own_in).sum((1, 2))
    else:
        assert g_lin is not None
        v = g_pre @ W_gate.T + g_lin @ W_in.T
        own = (g_lin * own_in).sum((1, 2))
        if lnb is not None:
            own = own + (g_pre * (lnb @ W_gate)).sum((1, 2))
    return pull(ln, scale2(cap, layer), v), own


def expert_read(cap: Capture, layer: int, g_out: Tensor) -> Tensor:
    """Read field of experts of `layer`: the gradient of `sum w_e(x) (y_e(x) . g)` (the experts
    and positions where `g_out` [b, p, E, d], a gradient at each expert's weighted output, is
    non-zero) with respect to the stream, through the router and the experts, ln2 frozen."""
    x0 = expert_inputs(cap, layer)
    with torch.enable_grad():
        x = x0.detach().requires_grad_(True)
        moe = cap.w.moe(layer)
        dt = moe.W_gate.dtype
        chosen = cap.layers[layer].experts
        assert chosen is not None
        w = router_weights(cap, layer, x)
        total = x.new_zeros(())
        for e in range(chosen.shape[-1]):
            ge = g_out[:, :, e]
            if bool((ge != 0).any()):
                y = cap.w.expert(layer, e)(x.to(dt)).to(x.dtype)
                total = total + (w[..., e : e + 1] * y * ge).sum()
        (gx,) = torch.autograd.grad(total, x, allow_unused=True)
    if gx is None:
        gx = torch.zeros_like(x0)
    return pull(cap.w.ln2(layer), scale2(cap, layer), gx.detach())


def neuron_read_order(cap: Capture, layer: int) -> float:
    return 4.0 * layer + (0.5 if cap.model.cfg.parallel_attn_mlp else 2.5)


# ---- latents ------------------------------------------------------------------------------------
def _reads_ln2(cap: Capture, key: str) -> int | None:
    """The layer whose ln2 output (before its weight) the dictionary at `key` reads, or None when
    it reads the residual stream itself."""
    hook = cap.latents[key].source.hook_in
    if hook.endswith(".ln2.hook_normalized"):
        return int(hook.split(".")[1])
    return None


def latent_read(cap: Capture, hook: str, g_f: Tensor) -> Tensor:
    """The read field on the stream of the latents' encoder for an output gradient `g_f`
    (a transcoder reading ln2's normalised output: carried back through the frozen norm)."""
    lat = cap.latents[hook]
    dtype = lat.source.decoders[0].dtype
    with torch.enable_grad():
        x = lat.x.detach().to(dtype).requires_grad_(True)
        f = lat.source.encode(x)
        (gx,) = torch.autograd.grad(f, x, g_f.to(f.dtype))
    gx = gx.to(lat.x.dtype)
    layer = _reads_ln2(cap, hook)
    if layer is None:
        return gx
    y = gx / scale2(cap, layer)
    return y - y.mean(-1, keepdim=True) if cap.w.ln2(layer).centres else y


def latent_input(cap: Capture, hook: str, w: Tensor) -> Tensor:
    """What a write `w` into the stream becomes in the input of the latents at `hook` (the
    adjoint of `latent_read`'s last step)."""
    layer = _reads_ln2(cap, hook)
    if layer is None:
        return w
    wc = w - w.mean(-1, keepdim=True) if cap.w.ln2(layer).centres else w
    return wc / scale2(cap, layer)


def latent_writes(cap: Capture, hook: str) -> list[tuple[str, float]]:
    """(output hook, stream order) of every write of the latents at `hook`: an SAE writes where
    it reads, a transcoder at its MLP's output, a cross-layer transcoder at each later one."""
    src = cap.latents[hook].source
    if src.is_sae:
        layer, site = latent_site(hook)
        return [(hook, 4.0 * layer + SITE_OFFSET[site])]
    return [(h, 4.0 * int(h.split(".")[1]) + 3) for h in src.hooks_out]


def writes_into(read: Read, order: float) -> bool:
    """Whether a latent's write at stream `order` is upstream of `read`."""
    return read.restrict is None and order < read.order


def latent_read_site(cap: Capture, hook: str) -> tuple[float, tuple[NodeKind, int] | None]:
    layer, site = latent_site(hook)
    if site in DICTIONARY_SITES:
        if _reads_ln2(cap, hook) is not None:
            return neuron_read_order(cap, layer), None
        return 4.0 * layer + SITE_OFFSET["resid_mid"], None
    if site == "attn_out":
        return 4.0 * layer + 1, (NodeKind.HEAD, layer)
    if site == "mlp_out":
        return 4.0 * layer + 3, (NodeKind.NEURON, layer)
    return 4.0 * layer + SITE_OFFSET[site], None


# ---- the question's own read --------------------------------------------------------------------
def question_reads(cap: Capture) -> tuple[Read, Read | None]:
    """The question's read field; for attention questions (query side, key side)."""
    b = _rows(cap)
    ans = torch.tensor(cap.answer, device=b.device)
    w = cap.w
    if not cap.question.is_attention:
        assert cap.final is not None and cap.u is not None
        x = cap.final[b, ans]
        u, cap_term = _output_grad(cap, x)
        g = u @ w.W_U.T
        r = pull(w.ln_final, norm_scale(w.ln_final, x), g)
        f = torch.zeros_like(cap.final)
        f[b, ans] = r
        terms = {}
        if w.ln_final.b is not None:
            terms["ln_final.b"] = (w.ln_final.b.detach().to(g.dtype) * g).sum(-1)
        if w.b_U is not None:
            terms["b_U"] = u @ w.b_U
        if cap_term is not None:
            terms["logit_soft_cap"] = cap_term
        return Read(f, FINAL, None, terms), None
    lay, h = cap.question.layer, cap.question.head
    assert cap.keys is not None
    keys = torch.tensor(cap.keys, device=b.device)
    acts = cap.layers[lay]
    dS = torch.zeros_like(acts.pattern)
    dS[b, h, ans, keys] = 1.0
    g_q, g_k, _ = head_input_grads(cap, lay, dS=dS)
    # with a soft-cap the sides split the raw score; the cap's share closes the sum to the value
    capped = {}
    if cap.model.cfg.attn_scores_soft_cap > 0:
        raw = raw_scores(cap, lay)[b, h, ans, keys]
        capped = {f"L{lay}.H{h}.soft_cap": cap.value - raw}
    ln = w.ln1(lay)
    lnb = ln.b.detach().to(g_q.dtype) if ln.b is not None else None
    reads = []
    for name, gx, W, bias in (
        ("q", g_q, w.W_Q(lay), w.b_Q(lay)),
        ("k", g_k, w.W_K(lay), w.b_K(lay)),
    ):
        f = pull(ln, scale1(cap, lay), torch.einsum("bphe,hde->bpd", gx, W))
        own = bias[h] + (lnb @ W[h] if lnb is not None else 0.0)
        pos = ans if name == "q" else keys
        term = (gx[b, pos, h] * own).sum(-1)
        terms = {f"L{lay}.H{h}.b_{name.upper()}": term, **capped}
        reads.append(Read(f, 4.0 * lay + 0.5, None, terms))
    return reads[0], reads[1]


def _output_grad(cap: Capture, x: Tensor) -> tuple[Tensor, Tensor | None]:
    """(the gradient [b, V] the question's read is built from, the soft-cap term [b] or None).

    Without a final-logit soft-cap: d value / d logits. With one (Gemma 2/3) the logits are
    `c tanh(l / c)` of the pre-cap logits `l`, which are linear in the stream: a logit or a
    logit difference is decomposed on the pre-cap logits (its coefficients, exactly), and the
    term `logit_soft_cap` = value - the question on the pre-cap logits closes the sum; a
    probability is linearised at the point, as always, through the cap's slope."""
    assert cap.u is not None
    c = cap.model.cfg.output_logits_soft_cap
    if c <= 0:
        return cap.u, None
    w = cap.w
    pre = normalize(w.ln_final, x) @ w.W_U
    if w.b_U is not None:
        pre = pre + w.b_U
    if cap.question.spec.kind == "prob":
        return cap.u * (1 - torch.tanh(pre / c) ** 2), None
    return cap.u, cap.value - cap.question.value(pre)


def combined(a: Read, b: Read | None) -> Read:
    if b is None:
        return a
    return Read(a.field + b.field, a.order, a.restrict, {**a.terms, **b.terms})


# ---- output gradients restricted to a path --------------------------------------------------------
def write_grad(cap: Capture, node: NodeId, read: Tensor, order: float = FINAL) -> Tensor:
    """The gradient at a node's activation (z, post, latents) of `write . read`, i.e. through the
    node's write only: z [b, p, H, dh], post [b, p, m] or latents [b, p, F] (zeros elsewhere).
    `order`: where `read` reads (a cross-layer transcoder's later writes do not reach it)."""
    if node.kind is NodeKind.HEAD:
        assert node.layer is not None
        read = post_pull(cap, node.layer, "attn", read)
        return torch.einsum("bpd,hed->bphe", read, cap.w.W_O(node.layer))
    if node.kind is NodeKind.NEURON:
        assert node.layer is not None
        return post_pull(cap, node.layer, "mlp", read) @ cap.w.mlp(node.layer)[2].T
    if node.kind is NodeKind.EXPERT:
        assert node.layer is not None
        read = post_pull(cap, node.layer, "mlp", read)
        return torch.einsum("bped,bpd->bpe", expert_outputs(cap, node.layer), read)
    lat = cap.latents[node.hook_name]
    src = lat.source
    g = torch.zeros_like(lat.f)
    for h, o in latent_writes(cap, node.hook_name):
        if o < order:
            g = g + read @ src.decoder(h).to(read.dtype).T
    return g * lat.scale
