"""`SparseAutoencoder`: parameters, encode/decode, and hook points for reading and ablating latents.

Shapes follow SAELens: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in]
(W_enc is a view of the parameter W_enc_T [d_sae, d_in]).
    latents = act(W_enc^T (n(x) - b_dec) + b_enc)      recon = n^-1(W_dec^T latents + b_dec)
b_dec is the TopK paper's "pre-encoder bias" (subtracted before encoding, added after decoding),
b_enc its "latent bias", n the optional parameter-free normalisation (identity by default).

Hook points (TransformerLens signature, `fn(tensor, hook)`): hook_input (the activation read),
hook_acts (dense latents [..., d_sae]: read or ablate them), hook_recons, hook_error (input minus
the clean reconstruction, when the error term is kept) and hook_output. While the SAE is spliced
into a model they are reachable as `<hook_name>.sae.hook_acts` and so on.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from lenscope.errors import ArtifactError, InputError
from lenscope.linalg import linear, linear_t
from lenscope.model.hooks import HookPoint
from lenscope.sae.architectures import get_architecture
from lenscope.sae.config import SAEConfig
from lenscope.sae.sparse_ops import Codes, sparse_decode

LN_EPS = 1e-5
HOOK_NAMES = ("hook_input", "hook_acts", "hook_recons", "hook_error", "hook_output")


class NormStats(NamedTuple):
    mu: Tensor  # [..., 1]
    std: Tensor  # [..., 1]


def layer_norm_stats(x: Tensor) -> NormStats:
    """OpenAI's parameter-free LN statistics: mean and unbiased std over the last dimension."""
    mu = x.mean(dim=-1, keepdim=True)
    return NormStats(mu, (x - mu).std(dim=-1, keepdim=True))


class SparseAutoencoder(nn.Module):
    """A sparse autoencoder on one hook point; see the module docstring for the maths."""

    def __init__(
        self,
        cfg: SAEConfig,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.arch = get_architecture(cfg.architecture)
        dt, dev = dtype, device
        # stored latent-major ([d_sae, d_in], rows contiguous) so sparse updates touch whole rows;
        # `W_enc` is its transpose view in SAELens' shape
        self.W_enc_T = nn.Parameter(torch.empty(cfg.d_sae, cfg.d_in, dtype=dt, device=dev))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, dtype=dt, device=dev))
        self.W_dec = nn.Parameter(torch.empty(cfg.d_sae, cfg.d_in, dtype=dt, device=dev))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in, dtype=dt, device=dev))
        self.threshold: Tensor
        self.register_buffer("threshold", torch.zeros(cfg.d_sae, dtype=dt, device=dev))
        self.hook_input = HookPoint()
        self.hook_acts = HookPoint()
        self.hook_recons = HookPoint()
        self.hook_error = HookPoint()
        self.hook_output = HookPoint()
        for name in HOOK_NAMES:
            getattr(self, name).name = name
        self.init_tied(seed)

    # ---- initialisation --------------------------------------------------------------------------
    @torch.no_grad()
    def init_tied(self, seed: int) -> None:
        """Random unit-norm decoder rows; the encoder is the decoder's transpose (the paper)."""
        g = torch.Generator().manual_seed(seed)
        bound = 1 / math.sqrt(self.cfg.d_in)  # nn.Linear's default init, as in OpenAI's code
        w = torch.rand(
            self.cfg.d_sae, self.cfg.d_in, generator=g, dtype=torch.float64, device="cpu"
        )
        w = (w * 2 - 1) * bound
        w = w / w.norm(dim=1, keepdim=True)
        self.W_dec.copy_(w)
        self.W_enc_T.copy_(w)
        self.b_enc.zero_()
        self.b_dec.zero_()
        self.threshold.zero_()

    @torch.no_grad()
    def init_from_data(self, sample: Tensor, median_iters: int = 100) -> None:
        """The paper's data-dependent init: b_dec = geometric median of the (normalised) sample;
        W_enc rescaled so that random unit-norm inputs around b_dec reconstruct with norm ~1."""
        x = self.normalize(sample.to(self.W_enc.dtype))[0]
        self.b_dec.copy_(geometric_median(x[:32768], median_iters))
        g = torch.Generator().manual_seed(1234)
        u = torch.randn(256, self.cfg.d_in, generator=g, dtype=torch.float64, device="cpu")
        u = u.to(x.device, x.dtype)  # the CPU generator's draws, on any device
        u = u / u.norm(dim=-1, keepdim=True)
        pre = self.pre_acts(u + self.b_dec)
        if self.cfg.k is not None and self.arch.uses_k:
            vals, idx = pre.topk(self.cfg.k, dim=-1, sorted=False)
            codes = Codes.from_topk(idx, vals.relu(), self.cfg.d_sae)
        else:
            codes = Codes.from_mask(pre, pre > 0)
        recon = sparse_decode(codes, self.W_dec)
        norm = float(recon.norm(dim=-1).mean())
        if norm > 0 and math.isfinite(norm):
            self.W_enc_T.div_(norm)

    # ---- pieces ----------------------------------------------------------------------------------
    @property
    def W_enc(self) -> Tensor:
        """The encoder [d_in, d_sae] (a view of the latent-major parameter `W_enc_T`)."""
        return self.W_enc_T.t()

    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    @property
    def d_sae(self) -> int:
        return self.cfg.d_sae

    def check_input(self, x: Tensor) -> None:
        if x.shape[-1] != self.cfg.d_in:
            raise InputError(
                f"the SAE reads {self.cfg.d_in}-dimensional activations"
                + (f" at {self.cfg.hook_name}" if self.cfg.hook_name else "")
                + f" but got a tensor of shape {tuple(x.shape)}; use an SAE trained on this hook"
            )

    def normalize(self, x: Tensor) -> tuple[Tensor, NormStats | None]:
        if not self.cfg.normalize:
            return x, None
        st = layer_norm_stats(x)
        return (x - st.mu) / (st.std + LN_EPS), st

    @staticmethod
    def denormalize(y: Tensor, stats: NormStats | None) -> Tensor:
        return y if stats is None else y * stats.std + stats.mu

    def pre_acts(self, xn: Tensor) -> Tensor:
        """Pre-activations [..., d_sae] of normalised inputs."""
        return linear_t(xn - self.b_dec, self.W_enc_T, self.b_enc)

    def activation(self, pre: Tensor) -> Tensor:
        """Dense activations of pre-activations (any leading shape)."""
        flat = pre.reshape(-1, self.cfg.d_sae)
        return self.arch.dense(flat, self.cfg.k, self.threshold).reshape(pre.shape)

    # ---- dense API (familiar; used when spliced) --------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        """Dense latent activations [..., d_sae] of activations [..., d_in]."""
        self.check_input(x)
        return self.activation(self.pre_acts(self.normalize(x.to(self.W_enc.dtype))[0]))

    def decode(self, acts: Tensor, stats: NormStats | None = None) -> Tensor:
        """Reconstruction from dense latents; pass `stats` from `normalize` when cfg.normalize."""
        if self.cfg.normalize and stats is None:
            raise InputError("this SAE normalises its input: decode needs the stats of encode")
        return self.denormalize(linear(acts, self.W_dec, self.b_dec), stats)

    def forward(self, x: Tensor, keep_error: bool = False) -> Tensor:
        """Reconstruction of x through the hook points.

        keep_error adds the error term x - x_hat, so the output equals x up to rounding unless a
        hook on hook_acts changed the latents (then exactly their effect passes). The error is
        computed from a second activation of the same pre-activations: it depends on x but not on
        the hooked latents, so the gradient at hook_acts holds the error fixed, while gradients
        to earlier layers stay the model's own (the two paths through the encoder cancel).
        """
        self.check_input(x)
        dtype = x.dtype
        x = self.hook_input.run(x.to(self.W_enc_T.dtype))
        xn, stats = self.normalize(x)
        pre = self.pre_acts(xn)
        acts = self.hook_acts.run(self.activation(pre))
        recon = self.hook_recons.run(self.denormalize(linear(acts, self.W_dec, self.b_dec), stats))
        if keep_error:
            clean = self.denormalize(linear(self.activation(pre), self.W_dec, self.b_dec), stats)
            recon = recon + self.hook_error.run(x - clean)
        return self.hook_output.run(recon).to(dtype)

    # ---- sparse API (fast; training and evaluation) -----------------------------------------------
    @torch.no_grad()
    def encode_codes_normalized(self, xn: Tensor) -> Codes:
        return self.arch.codes(self.pre_acts(xn), self.cfg.k, self.threshold)

    @torch.no_grad()
    def encode_codes(self, x: Tensor) -> tuple[Codes, NormStats | None]:
        """Sparse codes of [rows, d_in] activations (and the normalisation stats)."""
        self.check_input(x)
        xn, stats = self.normalize(x.to(self.W_enc.dtype))
        return self.encode_codes_normalized(xn), stats

    @torch.no_grad()
    def encode_topk(self, x: Tensor) -> tuple[Tensor, Tensor] | None:
        """(latent ids [N, k], activations [N, k]) of activations [..., d_in] flattened to N
        rows, for architectures that keep exactly k latents per token (TopK); else None. The
        dense `encode` is these values scattered into zeros."""
        if self.arch.name != "topk" or self.cfg.k is None:
            return None
        codes, _ = self.encode_codes(x.reshape(-1, self.cfg.d_in))
        k = self.cfg.k
        return codes.idx.view(-1, k), codes.val.view(-1, k)

    def decode_codes(self, codes: Codes, stats: NormStats | None = None) -> Tensor:
        return self.denormalize(sparse_decode(codes, self.W_dec) + self.b_dec, stats)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Reconstruction of [rows, d_in] activations through the sparse path."""
        codes, stats = self.encode_codes(x)
        return self.decode_codes(codes, stats)

    # ---- decoder constraint ---------------------------------------------------------------------
    @torch.no_grad()
    def set_decoder_unit_norm(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Project out each decoder row's gradient component along the (unit) row."""
        g = self.W_dec.grad
        if g is not None:
            g.sub_((g * self.W_dec).sum(dim=1, keepdim=True) * self.W_dec)


@torch.no_grad()
def geometric_median(x: Tensor, iters: int = 100, eps: float = 1e-8) -> Tensor:
    """Weiszfeld's algorithm in float64: the point minimising the sum of distances to rows of x."""
    pts = x.to(torch.float64)
    y = pts.mean(0)
    for _ in range(iters):
        w = 1 / (pts - y).norm(dim=1).clamp_min(eps)
        nxt = (w[:, None] * pts).sum(0) / w.sum()
        if float((nxt - y).norm()) <= 1e-10 * (1 + float(y.norm())):
            y = nxt
            break
        y = nxt
    return y.to(x.dtype)


def assign_tensors(sae: SparseAutoencoder, sd: dict[str, torch.Tensor], where: str) -> None:
    """Copy W_enc/b_enc/W_dec/b_dec (and threshold, if given) in, checking every shape."""
    needed = ("W_enc", "b_enc", "W_dec", "b_dec")
    missing = [n for n in needed if n not in sd]
    if missing:
        raise ArtifactError(f"{where}: missing tensor(s) {', '.join(missing)}")
    with torch.no_grad():
        for n in (*needed, "threshold"):
            if n not in sd:
                continue
            dst = getattr(sae, n)
            src = sd[n]
            if tuple(src.shape) != tuple(dst.shape):
                raise ArtifactError(
                    f"{where}: {n} has shape {tuple(src.shape)} but d_in {sae.d_in} and "
                    f"d_sae {sae.d_sae} imply {tuple(dst.shape)}"
                )
            if src.is_floating_point() and not bool(torch.isfinite(src).all()):
                raise ArtifactError(f"{where}: {n} contains NaN or infinite values")
            dst.copy_(src.to(dst.dtype))
