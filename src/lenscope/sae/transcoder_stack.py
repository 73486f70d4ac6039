"""`TranscoderStack`: every layer's transcoder as one batched module, for training.

One forward pass reads each layer's MLP input x [B, L, d_in] and predicts each MLP output
[B, L, d_out] with stacked parameters (layer-major): the encoder W_enc_T [L, S, d_in] (stored
latent-major, as the SAE's, so sparse updates touch whole rows), b_enc [L, S],
b_dec [L, d_out], an optional skip W_skip [L, d_in, d_out], and the decoder
- per-layer transcoders: W_dec [L, S, d_out]; out_l = f_l @ W_dec[l] + b_dec[l]
- a cross-layer transcoder: W_dec [L, S, L, d_out], used only where the output layer j is at
  or after the source layer i; out_j = sum_{i <= j} f_i @ W_dec[i, :, j] + b_dec[j]
(+ x_l @ W_skip[l] with the skip). Latents f = act(x @ W_enc + b_enc) with TopK, BatchTopK
(training: the batch's B*k largest per layer; inference: the learned `threshold`), JumpReLU
(`log_threshold` trained by a straight-through estimator) or ReLU. Each latent's decoder (all
its output layers together) has unit norm during training. `transcoders()` / `clt()` give the
inference objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lenscope.errors import InputError
from lenscope.sae.clt import CrossLayerTranscoder
from lenscope.sae.config import _DictForm
from lenscope.sae.transcoder import ACTIVATIONS, Transcoder, TranscoderConfig

HOOK_IN = "ln2.hook_normalized"
HOOK_OUT = "hook_mlp_out"


@dataclass(frozen=True)
class TranscoderSetConfig(_DictForm):
    """What a transcoder set is: sizes, activation, layers and the hooks it reads and writes."""

    d_in: int
    d_sae: int
    d_out: int
    layers: tuple[int, ...]
    activation: str = "batchtopk"
    k: int | None = 32
    skip: bool = False
    cross_layer: bool = False
    hook_in: str = HOOK_IN  # relative to blocks.{l}.
    hook_out: str = HOOK_OUT
    model_name: str = ""
    model_fingerprint: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        if self.activation not in ACTIVATIONS:
            raise InputError(
                f"transcoder activation {self.activation!r} is not supported "
                f"({', '.join(ACTIVATIONS)})"
            )
        for name in ("d_in", "d_sae", "d_out"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be a positive integer, got {v!r}")
        if not self.layers or len(set(self.layers)) != len(self.layers):
            raise InputError(f"layers must be distinct and not empty, got {list(self.layers)}")
        if list(self.layers) != sorted(self.layers) or min(self.layers) < 0:
            raise InputError(f"layers must be ascending and >= 0, got {list(self.layers)}")
        if self.cross_layer and list(self.layers) != list(range(len(self.layers))):
            raise InputError("a cross-layer transcoder covers every layer from 0: drop --layers")
        if self.activation == "topk" or (self.activation == "batchtopk" and self.k is not None):
            # BatchTopK's k only shapes training (inference uses the threshold): an imported
            # BatchTopK set may not know it
            if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
                raise InputError(f"{self.activation} needs k >= 1, got {self.k!r}")
            if self.k > self.d_sae:
                raise InputError(f"k = {self.k} is larger than d_sae = {self.d_sae}")
        elif self.activation != "batchtopk":
            object.__setattr__(self, "k", None)
        if self.cross_layer and self.activation not in ("relu", "jumprelu"):
            raise InputError(
                "cross-layer transcoders train with relu or jumprelu (circuit-tracer's layout)"
            )

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def hooks_in(self) -> list[str]:
        return [f"blocks.{layer}.{self.hook_in}" for layer in self.layers]

    def hooks_out(self) -> list[str]:
        return [f"blocks.{layer}.{self.hook_out}" for layer in self.layers]


class _JumpReLU(torch.autograd.Function):
    """f = pre * H(pre - t): gradient to pre where it fires; to t by a rectangle kernel."""

    @staticmethod
    def forward(ctx: Any, pre: Tensor, t: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, t)
        ctx.bandwidth = bandwidth
        return pre * (pre > t).to(pre.dtype)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, Tensor, None]:
        pre, t = ctx.saved_tensors
        eps = ctx.bandwidth
        near = ((pre - t).abs() < eps / 2).to(pre.dtype) / eps
        gt = -(t * near * g).sum(0)
        return g * (pre > t).to(g.dtype), gt, None


class _Step(torch.autograd.Function):
    """H(pre - t), with the straight-through gradient -1/eps * rect((pre - t)/eps) to t."""

    @staticmethod
    def forward(ctx: Any, pre: Tensor, t: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, t)
        ctx.bandwidth = bandwidth
        return (pre > t).to(pre.dtype)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[None, Tensor, None]:
        pre, t = ctx.saved_tensors
        eps = ctx.bandwidth
        near = ((pre - t).abs() < eps / 2).to(pre.dtype) / eps
        return None, -(near * g).sum(0), None


def jumprelu_ste(pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
    out: Tensor = _JumpReLU.apply(pre, threshold, bandwidth)
    return out


def step_ste(pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
    out: Tensor = _Step.apply(pre, threshold, bandwidth)
    return out


class TranscoderStack(nn.Module):
    """Stacked per-layer (or cross-layer) transcoder parameters; see the module docstring."""

    W_skip: nn.Parameter | None
    log_threshold: nn.Parameter | None

    def __init__(
        self,
        cfg: TranscoderSetConfig,
        *,
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
        jumprelu_init: float = 0.1,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        L, S, di, do = cfg.n_layers, cfg.d_sae, cfg.d_in, cfg.d_out
        g = torch.Generator().manual_seed(seed)
        dec_shape = (L, S, L, do) if cfg.cross_layer else (L, S, do)
        W_dec = torch.randn(*dec_shape, generator=g, dtype=torch.float64)
        self.W_dec = nn.Parameter(W_dec.to(dtype))
        with torch.no_grad():
            self.W_dec.mul_(self.dec_mask())
        self.set_decoder_unit_norm()
        W_enc = torch.randn(L, S, di, generator=g, dtype=torch.float64) / math.sqrt(di)
        self.W_enc_T = nn.Parameter(W_enc.to(dtype))
        self.b_enc = nn.Parameter(torch.zeros(L, S, dtype=dtype))
        self.b_dec = nn.Parameter(torch.zeros(L, do, dtype=dtype))
        if cfg.skip:
            self.W_skip = nn.Parameter(torch.zeros(L, di, do, dtype=dtype))
        else:
            self.register_parameter("W_skip", None)
        if cfg.activation == "jumprelu":
            init = torch.full((L, S), math.log(jumprelu_init), dtype=dtype)
            self.log_threshold = nn.Parameter(init)
        else:
            self.register_parameter("log_threshold", None)
        self.threshold: Tensor
        self.register_buffer("threshold", torch.zeros(L, S, dtype=dtype))

    # ---- shape helpers ----------------------------------------------------------------------------
    def dec_mask(self) -> Tensor:
        """1 where a decoder entry is used (all of them, or the CLT's j >= i block)."""
        if not self.cfg.cross_layer:
            return torch.ones(1, dtype=self.W_dec.dtype)
        L = self.cfg.n_layers
        tri = torch.ones(L, L, dtype=self.W_dec.dtype).triu()  # [i, j]: j >= i
        return tri[:, None, :, None]

    def thresholds(self) -> Tensor:
        """[L, S] inference thresholds (JumpReLU: exp(log_threshold); BatchTopK: learned)."""
        if self.log_threshold is not None:
            return self.log_threshold.detach().exp()
        return self.threshold

    # ---- maths ------------------------------------------------------------------------------------
    def pre_acts(self, x: Tensor) -> Tensor:
        """[B, L, S] pre-activations of inputs [B, L, d_in]."""
        return torch.einsum("bli,lsi->bls", x, self.W_enc_T) + self.b_enc

    def decode(self, f: Tensor, x: Tensor | None = None) -> Tensor:
        """[B, L, d_out] outputs of latents [B, L, S] (and the skip of inputs x)."""
        if self.cfg.cross_layer:
            W = self.W_dec * self.dec_mask()
            out = torch.einsum("bis,isjo->bjo", f, W) + self.b_dec
        else:
            out = torch.einsum("bls,lso->blo", f, self.W_dec) + self.b_dec
        if self.W_skip is not None and x is not None:
            out = out + torch.einsum("bli,lio->blo", x, self.W_skip)
        return out

    def own_decoder(self) -> Tensor:
        """[L, S, d_out]: each latent's decoder into its own layer (AuxK reconstructs with it)."""
        if not self.cfg.cross_layer:
            return self.W_dec
        L = self.cfg.n_layers
        own: Tensor = self.W_dec[torch.arange(L), :, torch.arange(L)]
        return own

    # ---- decoder constraint -----------------------------------------------------------------------
    def _row_norms(self) -> Tensor:
        dims = (2, 3) if self.cfg.cross_layer else (2,)
        norms: Tensor = self.W_dec.norm(dim=dims, keepdim=True)
        return norms.clamp_min(1e-12)

    @torch.no_grad()
    def set_decoder_unit_norm(self) -> None:
        self.W_dec.div_(self._row_norms())

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        g = self.W_dec.grad
        if g is not None:
            dims = (2, 3) if self.cfg.cross_layer else (2,)
            g.mul_(self.dec_mask())
            g.sub_((g * self.W_dec).sum(dim=dims, keepdim=True) * self.W_dec)

    # ---- inference objects ------------------------------------------------------------------------
    def transcoders(self) -> list[Transcoder]:
        """One `Transcoder` per layer (per-layer sets only), float32, on the CPU."""
        if self.cfg.cross_layer:
            raise InputError("a cross-layer transcoder is one object: use clt()")
        c = self.cfg
        thr = self.thresholds()
        out = []
        for i, layer in enumerate(c.layers):
            tc = TranscoderConfig(
                d_in=c.d_in,
                d_sae=c.d_sae,
                d_out=c.d_out,
                activation=c.activation,
                hook_in=f"blocks.{layer}.{c.hook_in}",
                hook_out=f"blocks.{layer}.{c.hook_out}",
                model_name=c.model_name,
                k=c.k,
                skip=c.skip,
                model_fingerprint=c.model_fingerprint,
            )
            t = Transcoder(tc)
            with torch.no_grad():
                t.W_enc.copy_(self.W_enc_T[i].t())
                t.b_enc.copy_(self.b_enc[i])
                t.W_dec.copy_(self.W_dec[i])
                t.b_dec.copy_(self.b_dec[i])
                t.threshold.copy_(thr[i])
                if t.W_skip is not None and self.W_skip is not None:
                    t.W_skip.copy_(self.W_skip[i])
            out.append(t.eval())
        return out

    def clt(self) -> CrossLayerTranscoder:
        """The cross-layer transcoder in circuit-tracer's orientation (cross-layer sets only)."""
        if not self.cfg.cross_layer:
            raise InputError("a per-layer set has no cross-layer transcoder: use transcoders()")
        c = self.cfg
        L = c.n_layers
        thr = self.thresholds() if c.activation == "jumprelu" else None
        d = self.W_dec.detach()
        return CrossLayerTranscoder(
            W_enc=[self.W_enc_T[i].detach().clone() for i in range(L)],
            b_enc=[self.b_enc[i].detach().clone() for i in range(L)],
            b_dec=[self.b_dec[i].detach().clone() for i in range(L)],
            W_dec=[d[i, :, i:].contiguous() for i in range(L)],
            threshold=None if thr is None else [thr[i].clone() for i in range(L)],
            hook_in=c.hook_in,
        )
