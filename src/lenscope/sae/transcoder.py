"""`Transcoder`: a dictionary that reads one hook (an MLP's input) and writes another (its output).

    latents = act(x @ W_enc + b_enc)       act: ReLU, JumpReLU (pre where pre > threshold), or
                                           TopK (each token's k largest, then ReLU: sparsify)
    out     = latents @ W_dec + b_dec

Shapes follow SAELens and circuit-tracer: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_out],
b_dec [d_out]. No bias is subtracted before encoding (both libraries' convention for transcoders).
`as_dictionary()` gives the one adapter every instrument uses; spliced with the error kept it is
the MLP's replacement plus the error, an exact identity until a latent is edited.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lenscope.errors import InputError
from lenscope.sae.dictionary import Dictionary

ACTIVATIONS = ("relu", "jumprelu", "topk")


@dataclass(frozen=True)
class TranscoderConfig:
    d_in: int
    d_sae: int
    d_out: int
    activation: str  # relu | jumprelu | topk
    hook_in: str
    hook_out: str
    model_name: str = ""
    k: int | None = None  # topk only

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise InputError(
                f"transcoder activation {self.activation!r} is not supported "
                f"({', '.join(ACTIVATIONS)})"
            )
        if min(self.d_in, self.d_sae, self.d_out) < 1:
            raise InputError("a transcoder's d_in, d_sae and d_out must be positive")
        if (self.activation == "topk") != (self.k is not None):
            raise InputError("a TopK transcoder needs k (and only TopK transcoders take one)")
        if self.k is not None and not 1 <= self.k <= self.d_sae:
            raise InputError(f"k = {self.k} must be between 1 and d_sae = {self.d_sae}")


class Transcoder(nn.Module):
    """A single-layer transcoder; see the module docstring for the maths."""

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
        self.threshold: Tensor
        self.register_buffer("threshold", zeros(cfg.d_sae))

    @property
    def hook_name(self) -> str:
        return self.cfg.hook_in

    def encode(self, x: Tensor) -> Tensor:
        """Latents [..., d_sae] of activations [..., d_in] read at `hook_in`."""
        if x.shape[-1] != self.cfg.d_in:
            raise InputError(
                f"the transcoder reads {self.cfg.d_in}-dimensional activations at "
                f"{self.cfg.hook_in} but got a tensor of shape {tuple(x.shape)}"
            )
        pre = x.to(self.W_enc.dtype) @ self.W_enc + self.b_enc
        acts = pre.relu()
        if self.cfg.activation == "jumprelu":
            acts = acts * (pre > self.threshold).to(acts.dtype)
        if self.cfg.activation == "topk":
            assert self.cfg.k is not None
            vals, idx = pre.topk(self.cfg.k, dim=-1, sorted=False)
            acts = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
        return acts

    def decode(self, f: Tensor) -> Tensor:
        """The output [..., d_out] written at `hook_out`."""
        return f.to(self.W_dec.dtype) @ self.W_dec + self.b_dec

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def as_dictionary(self) -> Dictionary:
        """The one adapter: reads `hook_in`, writes `hook_out` (decoder W_dec, bias b_dec)."""
        return Dictionary(
            hook_in=self.cfg.hook_in,
            hooks_out=(self.cfg.hook_out,),
            encode=self.encode,
            decoders=(self.W_dec.detach(),),
            biases=(self.b_dec.detach(),),
            model_name=self.cfg.model_name,
            source=self,
        )
