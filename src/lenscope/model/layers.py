"""The blocks of the hooked Transformer: rotary embeddings, attention, MLP (norms: `norms`).

Weights are stored fused for speed (one QKV matrix, one [d_model, d_mlp] matrix) and exposed as
TransformerLens-shaped views (`W_Q` [n_heads, d_model, d_head], ...). When no hook point inside a
component is active, the fast path runs (fused layer_norm, scaled_dot_product_attention).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lenscope.errors import InputError, UnsupportedArchitectureError
from lenscope.linalg import linear
from lenscope.model.config import Activation, ModelConfig
from lenscope.model.hooks import HookPoint
from lenscope.model.kv import KVSlot
from lenscope.model.moe import MoE
from lenscope.model.norms import Norm as Norm  # re-exported: its home was here


def rotate_half(x: Tensor) -> Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def rotate_interleaved(x: Tensor) -> Tensor:
    a, b = x[..., ::2], x[..., 1::2]
    return torch.stack((-b, a), dim=-1).flatten(-2)


class Angles(tuple[Tensor, Tensor]):
    """(cos, sin) of one rotary base at some positions, remembering the base (and linear
    scaling) and the positions: a layer whose rotary differs (Gemma 3's local and global layers)
    recomputes its own from them, so code that replays blocks with the first layer's angles
    stays exact."""

    base: float
    positions: Tensor
    scale: float

    def __new__(
        cls, cos: Tensor, sin: Tensor, base: float, positions: Tensor, scale: float = 1.0
    ) -> Angles:
        out = super().__new__(cls, (cos, sin))
        out.base, out.positions, out.scale = base, positions, scale
        return out


class Rotary(nn.Module):
    """Rotary position embedding on the first `rotary_dim` dims of each head (partial rotary)."""

    def __init__(self, cfg: ModelConfig, base: float | None = None, scale: float = 1.0) -> None:
        super().__init__()
        self.dim = cfg.rotary_dim
        self.interleaved = cfg.rotary_interleaved
        self.base = cfg.rotary_base if base is None else base
        self.scale = scale  # linear rope scaling: frequencies divided by it
        inv = 1.0 / (self.base ** (torch.arange(0, self.dim, 2, dtype=torch.float64) / self.dim))
        inv = inv / scale
        self.inv_freq: Tensor
        self.register_buffer("inv_freq", inv.float(), persistent=False)
        self.long_rope = cfg.rotary_long_rope
        self.inv_long: Tensor | None = None
        self.gain = 1.0
        if self.long_rope is not None:  # LongRoPE: per-frequency short and long factors
            short = torch.tensor(self.long_rope["short_factor"], dtype=torch.float64)
            long = torch.tensor(self.long_rope["long_factor"], dtype=torch.float64)
            self.inv_freq = (inv / short).float()
            self.inv_long = (inv / long).float()
            self.gain = float(self.long_rope["attention_factor"])

    def cos_sin(self, positions: Tensor, dtype: torch.dtype) -> Angles:
        """positions [batch, pos] -> cos, sin [batch, pos, 1, rotary_dim]."""
        inv = self.inv_freq
        if self.inv_long is not None and int(positions.max()) + 1 > self.long_rope_original:
            inv = self.inv_long  # as transformers: the long factors once a forward passes it
        freqs = positions.to(torch.float32)[..., None] * inv.to(positions.device)
        emb = (
            freqs.repeat_interleave(2, dim=-1)
            if self.interleaved
            else torch.cat((freqs, freqs), dim=-1)
        )
        cos, sin = emb.cos()[:, :, None, :], emb.sin()[:, :, None, :]
        if self.gain != 1.0:
            cos, sin = cos * self.gain, sin * self.gain
        cos, sin = cos.to(dtype), sin.to(dtype)
        return Angles(cos, sin, self.base, positions, self.scale)

    @property
    def long_rope_original(self) -> int:
        return int(self.long_rope["original_max"]) if self.long_rope is not None else 0

    @property
    def key(self) -> tuple[float, float]:
        """(base, scale): layers with the same key share their angles."""
        return self.base, self.scale

    def rotate(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        rot, rest = x[..., : self.dim], x[..., self.dim :]
        turn = rotate_interleaved(rot) if self.interleaved else rotate_half(rot)
        out = rot * cos + turn * sin
        return torch.cat((out, rest), dim=-1) if rest.shape[-1] else out


class Attention(nn.Module):
    """Multi-head (or grouped-query) causal self-attention with TransformerLens hook points;
    sliding-window attention where the config gives this layer a window (with its own rotary
    base if the config has one), q/k norms and soft-capped scores where the config asks."""

    def __init__(self, cfg: ModelConfig, layer: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.window = cfg.window(layer)
        h, kv, dh, d = cfg.n_heads, cfg.n_kv_heads, cfg.d_head, cfg.d_model
        self.w_qkv = nn.Parameter(torch.empty(d, (h + 2 * kv) * dh))
        self.b_qkv = nn.Parameter(torch.zeros((h + 2 * kv) * dh)) if cfg.attn_bias else None
        self.w_o = nn.Parameter(torch.empty(h * dh, d))
        self.b_o = nn.Parameter(torch.zeros(d)) if cfg.attn_out_bias else None
        self.rotary = (
            Rotary(cfg, cfg.rotary_base_of(layer), cfg.rotary_scale_of(layer))
            if cfg.positional == "rotary"
            else None
        )
        self.q_norm, self.k_norm = _qk_norms(cfg)
        for name in ("q", "k", "v", "rot_q", "rot_k", "attn_scores", "pattern", "z"):
            setattr(self, f"hook_{name}", HookPoint())
        self.hook_q: HookPoint
        self.hook_k: HookPoint
        self.hook_v: HookPoint
        self.hook_rot_q: HookPoint
        self.hook_rot_k: HookPoint
        self.hook_attn_scores: HookPoint
        self.hook_pattern: HookPoint
        self.hook_z: HookPoint

    # ---- TransformerLens-shaped views of the fused weights -------------------------------------
    def _split(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h, kv, dh = self.cfg.n_heads, self.cfg.n_kv_heads, self.cfg.d_head
        return t[..., : h * dh], t[..., h * dh : (h + kv) * dh], t[..., (h + kv) * dh :]

    def _heads_w(self, w: Tensor, n: int) -> Tensor:
        return w.reshape(self.cfg.d_model, n, self.cfg.d_head).permute(1, 0, 2)

    def _expand(self, t: Tensor) -> Tensor:
        g = self.cfg.n_heads // self.cfg.n_kv_heads
        return t if g == 1 else t.repeat_interleave(g, dim=0)

    @property
    def W_Q(self) -> Tensor:
        return self._heads_w(self._split(self.w_qkv)[0], self.cfg.n_heads)

    @property
    def W_K(self) -> Tensor:
        return self._expand(self._heads_w(self._split(self.w_qkv)[1], self.cfg.n_kv_heads))

    @property
    def W_V(self) -> Tensor:
        return self._expand(self._heads_w(self._split(self.w_qkv)[2], self.cfg.n_kv_heads))

    @property
    def W_O(self) -> Tensor:
        return self.w_o.reshape(self.cfg.n_heads, self.cfg.d_head, self.cfg.d_model)

    def _bias(self, i: int, n: int) -> Tensor:
        if self.b_qkv is None:
            return self.w_qkv.new_zeros(n, self.cfg.d_head)
        return self._split(self.b_qkv)[i].reshape(n, self.cfg.d_head)

    @property
    def b_Q(self) -> Tensor:
        return self._bias(0, self.cfg.n_heads)

    @property
    def b_K(self) -> Tensor:
        return self._expand(self._bias(1, self.cfg.n_kv_heads))

    @property
    def b_V(self) -> Tensor:
        return self._expand(self._bias(2, self.cfg.n_kv_heads))

    @property
    def b_O(self) -> Tensor:
        return self.b_o if self.b_o is not None else self.w_o.new_zeros(self.cfg.d_model)

    # ---- forward ---------------------------------------------------------------------------------
    def _needs_pattern(self) -> bool:
        return (
            self.hook_attn_scores.active
            or self.hook_pattern.active
            or self.cfg.attn_scores_soft_cap > 0
        )

    def forward(
        self,
        x: Tensor,
        rot: tuple[Tensor, Tensor] | None,
        mask: Tensor | None,
        kv: KVSlot | None = None,
    ) -> Tensor:
        """x [batch, pos, d_model]; mask [batch, 1, q, k] bool (True = may attend) or None = causal;
        kv: this layer's key/value cache (the new keys and values are appended to it)."""
        cfg = self.cfg
        b, p, _ = x.shape
        qkv = linear(x, self.w_qkv, self.b_qkv)
        q, k, v = self._split(qkv)
        q = self.hook_q.run(q.reshape(b, p, cfg.n_heads, cfg.d_head))
        k = self.hook_k.run(k.reshape(b, p, cfg.n_kv_heads, cfg.d_head))
        v = self.hook_v.run(v.reshape(b, p, cfg.n_kv_heads, cfg.d_head))
        if self.q_norm is not None and self.k_norm is not None:
            q, k = _apply_qk_norm(self.q_norm, q), _apply_qk_norm(self.k_norm, k)
        if self.rotary is not None and rot is not None:
            if isinstance(rot, Angles) and (rot.base, rot.scale) != self.rotary.key:
                rot = self.rotary.cos_sin(rot.positions, rot[0].dtype)
            q = self.hook_rot_q.run(self.rotary.rotate(q, *rot))
            k = self.hook_rot_k.run(self.rotary.rotate(k, *rot))
        if kv is not None:
            k, v = kv.extend(k, v)
        if self.window and k.shape[1] > self.window:
            mask = within_window(mask, p, k.shape[1], self.window, x.device)
        qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if self._needs_pattern():
            g = cfg.n_heads // cfg.n_kv_heads
            if g > 1:
                kt, vt = kt.repeat_interleave(g, dim=1), vt.repeat_interleave(g, dim=1)
            scores = (qt @ kt.transpose(-1, -2)) / cfg.attn_scale
            if cfg.attn_scores_soft_cap > 0:
                scores = soft_cap(scores, cfg.attn_scores_soft_cap)
            allowed = mask if mask is not None else _causal(p, x.device)
            scores = self.hook_attn_scores.run(scores.masked_fill(~allowed, float("-inf")))
            pattern = self.hook_pattern.run(torch.softmax(scores, dim=-1))
            zt = pattern @ vt
        else:
            zt = F.scaled_dot_product_attention(
                qt,
                kt,
                vt,
                attn_mask=mask,
                is_causal=mask is None,
                scale=1.0 / cfg.attn_scale,
                enable_gqa=cfg.n_kv_heads != cfg.n_heads,
            )
        z = self.hook_z.run(zt.transpose(1, 2))
        flat = z.reshape(b * p, cfg.n_heads * cfg.d_head)
        return linear(flat, self.w_o, self.b_o).reshape(b, p, cfg.d_model)


def soft_cap(x: Tensor, cap: float) -> Tensor:
    """`cap * tanh(x / cap)` (Gemma 2's soft-capping of attention scores and logits)."""
    return torch.tanh(x / cap) * cap


def _qk_norms(cfg: ModelConfig) -> tuple[Norm | None, Norm | None]:
    """The RMSNorms of queries and keys: over one head's d_head ("head") or over all heads'
    projections at once ("full"), or none."""
    if cfg.qk_norm == "none":
        return None, None
    if cfg.qk_norm == "head":
        return Norm(cfg, cfg.d_head), Norm(cfg, cfg.d_head)
    return Norm(cfg, cfg.n_heads * cfg.d_head), Norm(cfg, cfg.n_kv_heads * cfg.d_head)


def _apply_qk_norm(norm: Norm, x: Tensor) -> Tensor:
    """x [batch, pos, heads, d_head] through a per-head norm, or flattened over heads."""
    if norm.d == x.shape[-1]:
        out: Tensor = norm(x)
        return out
    b, p, h, dh = x.shape
    flat: Tensor = norm(x.reshape(b, p, h * dh))
    return flat.reshape(b, p, h, dh)


def _causal(p: int, device: torch.device) -> Tensor:
    return torch.ones(p, p, dtype=torch.bool, device=device).tril()


def within_window(
    mask: Tensor | None, n_q: int, n_k: int, window: int, device: torch.device
) -> Tensor:
    """`mask` (None = causal) narrowed to a sliding window: the queries are the last `n_q` of
    `n_k` positions (all of them without a cache), and query i sees key j only if
    0 <= i - j < window, the convention of `transformers`' sliding-window mask."""
    qi = torch.arange(n_k - n_q, n_k, device=device)[:, None]
    kj = torch.arange(n_k, device=device)[None, :]
    band = ((qi >= kj) & (qi - kj < window))[None, None]
    return band if mask is None else mask & band


_ACTS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
}


def activation_named(name: str, family: str) -> Activation:
    """`name` (a checkpoint's activation) when lenscope's MLP has it, else a one-line refusal."""
    if name not in _ACTS:
        raise UnsupportedArchitectureError(
            f"{family} with activation {name!r} is not supported; lenscope's MLP runs "
            f"{', '.join(sorted(_ACTS))}"
        )
    return cast(Activation, name)


class MLP(nn.Module):
    """GELU MLP or gated (SwiGLU-style) MLP with `hook_pre`, `hook_pre_linear`, `hook_post`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, m = cfg.d_model, cfg.d_mlp
        self.W_in = nn.Parameter(torch.empty(d, m))
        self.W_gate = nn.Parameter(torch.empty(d, m)) if cfg.gated_mlp else None
        self.b_in = nn.Parameter(torch.zeros(m)) if cfg.mlp_bias else None
        self.W_out = nn.Parameter(torch.empty(m, d))
        self.b_out = nn.Parameter(torch.zeros(d)) if cfg.mlp_bias else None
        self.act: Callable[[Tensor], Tensor] = _ACTS[cfg.act_fn]
        self.hook_pre = HookPoint()
        self.hook_pre_linear = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        lin = linear(x, self.W_in, self.b_in)
        if self.W_gate is not None:
            pre = self.hook_pre.run(linear(x, self.W_gate))
            post = self.act(pre) * self.hook_pre_linear.run(lin)
        else:
            post = self.act(self.hook_pre.run(lin))
        return linear(self.hook_post.run(post), self.W_out, self.b_out)


class Block(nn.Module):
    """One residual block: `ln1` -> attention (-> `ln1_post`) and `ln2` -> MLP (-> `ln2_post`);
    the post-sublayer norms exist only with `cfg.post_norm`, and `ln1`/`ln2` are identities
    without `cfg.pre_norm` (OLMo-2). `hook_attn_out` / `hook_mlp_out` see what is added to the
    residual stream, after any post-sublayer norm (as in TransformerLens)."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.layer = layer
        none = replace(cfg, normalization="none", qk_norm="none", post_norm=False)
        pre = cfg if cfg.pre_norm else none
        self.ln1 = Norm(pre, cfg.d_model)
        self.ln1_post = Norm(cfg, cfg.d_model) if cfg.post_norm else None
        self.attn = Attention(cfg, layer)
        self.ln2 = Norm(pre, cfg.d_model) if not cfg.attn_only else None
        self.ln2_post = Norm(cfg, cfg.d_model) if cfg.post_norm and not cfg.attn_only else None
        self.mlp: MLP | MoE | None = None
        if cfg.num_experts and not cfg.attn_only:
            experts: list[nn.Module] = [MLP(cfg) for _ in range(cfg.num_experts)]
            if cfg.d_mlp_shared:  # Qwen2-MoE's shared expert: the last one, its own width
                experts.append(MLP(replace(cfg, d_mlp=cfg.d_mlp_shared)))
            self.mlp = MoE(cfg, experts)
        elif not cfg.attn_only:
            self.mlp = MLP(cfg)
        for name in ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"):
            setattr(self, f"hook_{name}", HookPoint())
        self.hook_resid_pre: HookPoint
        self.hook_resid_mid: HookPoint
        self.hook_resid_post: HookPoint
        self.hook_attn_out: HookPoint
        self.hook_mlp_out: HookPoint

    def dense_mlp(self) -> MLP | None:
        """This block's MLP (None when attention-only); a mixture of experts has no single MLP
        whose neurons instruments could read, and is refused in one line."""
        if self.mlp is None or isinstance(self.mlp, MLP):
            return self.mlp
        raise InputError(
            f"{self.cfg.name} is a mixture of experts: block {self.layer} has no dense MLP; "
            f"read its experts at blocks.{self.layer}.mlp.experts.{{e}}"
        )

    def forward(
        self,
        x: Tensor,
        rot: tuple[Tensor, Tensor] | None,
        mask: Tensor | None,
        kv: KVSlot | None = None,
    ) -> Tensor:
        x = self.hook_resid_pre.run(x)
        attn_out = self.attn(self.ln1(x), rot, mask, kv)
        if self.ln1_post is not None:
            attn_out = self.ln1_post(attn_out)
        attn_out = self.hook_attn_out.run(attn_out)
        if self.mlp is None or self.ln2 is None:
            return self.hook_resid_post.run(x + attn_out)
        if self.cfg.parallel_attn_mlp:
            mlp_out = self.hook_mlp_out.run(self.mlp(self.ln2(x)))
            return self.hook_resid_post.run(x + attn_out + mlp_out)
        mid = self.hook_resid_mid.run(x + attn_out)
        mlp_out = self.mlp(self.ln2(mid))
        if self.ln2_post is not None:
            mlp_out = self.ln2_post(mlp_out)
        mlp_out = self.hook_mlp_out.run(mlp_out)
        return self.hook_resid_post.run(mid + mlp_out)


_NORM_WEIGHTS = ("ln1.w", "ln2.w", "ln_final.w", "ln1_post.w", "ln2_post.w", "_norm.w")


def init_weights(module: nn.Module, cfg: ModelConfig, seed: int | None = None) -> None:
    """GPT-2-style initialisation: N(0, 0.02), output projections scaled by 1/sqrt(2 n_layers)."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    std = 0.02
    out_std = std / math.sqrt(2 * max(cfg.n_layers, 1))
    for name, p in module.named_parameters():
        if p.is_meta:  # a loader is about to assign the real weights (lenscope.model.load)
            continue
        with torch.no_grad():
            if name.endswith(_NORM_WEIGHTS):
                p.fill_(1.0)
            elif p.ndim == 1:
                p.zero_()
            else:
                s = out_std if name.endswith(("w_o", "W_out")) else std
                p.copy_(torch.randn(p.shape, generator=gen) * s)
