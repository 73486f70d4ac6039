"""`Transcoder`: a dictionary that reads one hook (an MLP's input) and writes another (its output).

    latents = act(x @ W_enc + b_enc)       act: ReLU; JumpReLU and BatchTopK (pre where
                                           pre > threshold, then ReLU); TopK (each token's k
                                           largest, then ReLU: sparsify)
    out     = latents @ W_dec + b_dec  [+ x @ W_skip]

Shapes follow SAELens and circuit-tracer: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_out],
b_dec [d_out]; the optional linear skip (a "skip transcoder", Paulo et al. 2025) W_skip
[d_in, d_out] (SAELens and circuit-tracer store its transpose). No bias is subtracted before
encoding (both libraries' convention for transcoders). BatchTopK is trained with a batch-wide
selection and runs at inference as a JumpReLU at its learned threshold.

`as_dictionary()` gives the one adapter every instrument uses. The skip is linear in the input,
not in the latents, so it is no decoder row: the `Dictionary` carries it in `reconstruct(f, x)`
(= decode(f) + x @ W_skip, what `decode(f, x)` and a splice without the error return), while
`write(f, x, hook)` (what latents write) leaves it out. Spliced with the error kept the skip is
part of the error (true output minus latents' writes), so the splice is an exact identity until
a latent is edited.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lenscope.errors import InputError
from lenscope.sae.dictionary import Dictionary

ACTIVATIONS = ("relu", "jumprelu", "topk", "batchtopk")
THRESHOLDED = ("jumprelu", "batchtopk")  # fire where pre > threshold at inference


@dataclass(frozen=True)
class TranscoderConfig:
    d_in: int
    d_sae: int
    d_out: int
    activation: str  # relu | jumprelu | topk | batchtopk
    hook_in: str
    hook_out: str
    model_name: str = ""
    k: int | None = None  # topk: per token; batchtopk: on average (training only)
    skip: bool = False  # a linear skip W_skip [d_in, d_out]
    model_fingerprint: str | None = None

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise InputError(
                f"transcoder activation {self.activation!r} is not supported "
                f"({', '.join(ACTIVATIONS)})"
            )
        if min(self.d_in, self.d_sae, self.d_out) < 1:
            raise InputError("a transcoder's d_in, d_sae and d_out must be positive")
        if self.activation == "topk" and self.k is None:
            raise InputError("a TopK transcoder needs k")
        if self.activation not in ("topk", "batchtopk") and self.k is not None:
            raise InputError("only TopK and BatchTopK transcoders take k")
        if self.k is not None and not 1 <= self.k <= self.d_sae:
            raise InputError(f"k = {self.k} must be between 1 and d_sae = {self.d_sae}")


class Transcoder(nn.Module):
    """A single-layer transcoder; see the module docstring for the maths."""

    W_skip: nn.Parameter | None

    def __init__(
        self,
        cfg: TranscoderConfig,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        self.cfg = cfg

        def zeros(*shape: int) -> Tensor:
            return torch.zeros(*shape, dtype=dtype, device=device)

        self.W_enc = nn.Parameter(zeros(cfg.d_in, cfg.d_sae))
        self.b_enc = nn.Parameter(zeros(cfg.d_sae))
        self.W_dec = nn.Parameter(zeros(cfg.d_sae, cfg.d_out))
        self.b_dec = nn.Parameter(zeros(cfg.d_out))
        if cfg.skip:
            self.W_skip = nn.Parameter(zeros(cfg.d_in, cfg.d_out))
        else:
            self.register_parameter("W_skip", None)
        self.threshold: Tensor
        self.register_buffer("threshold", zeros(cfg.d_sae))

    @property
    def hook_name(self) -> str:
        return self.cfg.hook_in

    def pre_acts(self, x: Tensor) -> Tensor:
        """Pre-activations [..., d_sae] of activations [..., d_in] read at `hook_in`."""
        if x.shape[-1] != self.cfg.d_in:
            raise InputError(
                f"the transcoder reads {self.cfg.d_in}-dimensional activations at "
                f"{self.cfg.hook_in} but got a tensor of shape {tuple(x.shape)}"
            )
        return x.to(self.W_enc.dtype) @ self.W_enc + self.b_enc

    def encode(self, x: Tensor) -> Tensor:
        """Latents [..., d_sae] of activations [..., d_in] read at `hook_in`."""
        pre = self.pre_acts(x)
        acts = pre.relu()
        if self.cfg.activation in THRESHOLDED:
            acts = acts * (pre > self.threshold).to(acts.dtype)
        if self.cfg.activation == "topk":
            assert self.cfg.k is not None
            vals, idx = pre.topk(self.cfg.k, dim=-1, sorted=False)
            acts = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
        return acts

    def decode(self, f: Tensor) -> Tensor:
        """What the latents write at `hook_out` (with b_dec; without the skip)."""
        return f.to(self.W_dec.dtype) @ self.W_dec + self.b_dec

    def skip_out(self, x: Tensor) -> Tensor:
        """The skip's part of the output, x @ W_skip (zeros without a skip)."""
        if self.W_skip is None:
            return torch.zeros(
                *x.shape[:-1], self.cfg.d_out, dtype=self.W_dec.dtype, device=x.device
            )
        return x.to(self.W_skip.dtype) @ self.W_skip

    def forward(self, x: Tensor) -> Tensor:
        out = self.decode(self.encode(x))
        return out if self.W_skip is None else out + self.skip_out(x)

    def as_dictionary(self) -> Dictionary:
        """The one adapter: reads `hook_in`, writes `hook_out` (decoder W_dec, bias b_dec; the
        skip, if any, in `reconstruct`: see the module docstring)."""
        rec = None
        if self.W_skip is not None:

            def rec(f: Tensor, x: Tensor) -> Tensor:
                return (self.decode(f) + self.skip_out(x)).to(x.dtype)

        return Dictionary(
            hook_in=self.cfg.hook_in,
            hooks_out=(self.cfg.hook_out,),
            encode=self.encode,
            decoders=(self.W_dec.detach(),),
            biases=(self.b_dec.detach(),),
            reconstruct=rec,
            model_fingerprint=self.cfg.model_fingerprint,
            model_name=self.cfg.model_name,
            source=self,
        )
