"""A model's weights made ready for circuit reading: LayerNorm folded, writing weights centred.

Every circuit (bigram table, OV/QK circuits, composition, path expansion) reads products of weight
matrices, but a pre-LN transformer puts a normalisation between each writer and each reader. We
handle it the way TransformerLens' `fold_ln` + `center_writing_weights` do, and say so:

* the normalisation's weight `w` and bias `b` are folded into the matrices that read its output
  (W_Q/W_K/W_V of the block, W_U for the final norm): W' = diag(w) W, b' = b W + b_reader;
  for LayerNorm W' is then centred along d_model (its mean there reads nothing, since the norm's
  output has mean zero), as `fold_ln` does (`lenscope.model.norms.fold_norm`);
* for LayerNorm the writing weights (W_E, W_pos, W_O, b_O) are centred along d_model, so the
  norm's mean subtraction is the identity on everything they write;
* what remains is the division by the norm's scale, a positive number per position. Scale-free
  quantities (composition scores, copying scores, rankings) do not depend on it; where magnitudes
  are shown the scale is frozen to its mean over a reference batch (`frozen_scales`), or left at 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lenscope.data.repeated import repeated_tokens
from lenscope.errors import InputError
from lenscope.model.factored import FactoredMatrix
from lenscope.model.norms import center, fold_norm
from lenscope.model.transformer import HookedTransformer
from lenscope.model.view import isolated


@dataclass(frozen=True)
class LayerNormHandling:
    """How normalisation was handled; `describe()` is the line shown beside every result."""

    kind: str  # "LN" | "RMS" | "none"
    folded: bool  # norm weights/biases folded into the reading matrices
    centered: bool  # writing weights centred (LayerNorm only)
    frozen_from: str | None  # what the frozen scales were measured on; None: scales left at 1
    ln1_scale: list[float]  # frozen scale of each block's attention-input norm
    ln_final_scale: float

    def describe(self) -> str:
        if self.kind == "none":
            return "no normalisation: circuits are exact products of the weights"
        what = "LayerNorm" if self.kind == "LN" else "RMSNorm"
        parts = [f"{what} weights folded into W_Q/W_K/W_V and W_U"]
        if self.centered:
            parts.append("writing (W_E, W_pos, W_O) and reading weights centred")
        if self.frozen_from is None:
            parts.append("scales not applied (set to 1; rankings and ratios are unaffected)")
        else:
            s1 = ", ".join(f"{s:.3g}" for s in self.ln1_scale)
            per_layer = f"ln1 per layer: {s1}; " if s1 else ""
            parts.append(
                f"scales frozen to their mean over {self.frozen_from} "
                f"({per_layer}ln_final: {self.ln_final_scale:.3g})"
            )
        return "; ".join(parts)


@dataclass(frozen=True, eq=False)
class CircuitWeights:
    """Folded, centred float64 weights (TransformerLens shapes) plus the frozen norm scales."""

    W_E: Tensor  # [V, d]
    W_pos: Tensor | None  # [n_ctx, d]
    W_Q: Tensor  # [L, H, d, dh]
    W_K: Tensor
    W_V: Tensor
    b_Q: Tensor  # [L, H, dh]
    b_K: Tensor
    b_V: Tensor
    W_O: Tensor  # [L, H, dh, d]
    b_O: Tensor  # [L, d]
    W_U: Tensor  # [d, V]
    b_U: Tensor  # [V]
    attn_scale: float
    ln: LayerNormHandling

    @property
    def n_layers(self) -> int:
        return int(self.W_Q.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.W_Q.shape[1])

    @property
    def d_vocab(self) -> int:
        return int(self.W_E.shape[0])

    @property
    def ln1_scale(self) -> Tensor:
        return torch.tensor(self.ln.ln1_scale, dtype=torch.float64, device=self.W_E.device)

    # ---- d_model x d_model circuits (batched over [L, H]) -------------------------------------
    @property
    def OV(self) -> FactoredMatrix:
        """W_V W_O per head, [L, H, d, d] (rows: residual read at the source)."""
        return FactoredMatrix(self.W_V, self.W_O)

    @property
    def QK(self) -> FactoredMatrix:
        """W_Q W_K^T per head, [L, H, d, d] (rows: query side, columns: key side)."""
        return FactoredMatrix(self.W_Q, self.W_K.mT)

    # ---- vocabulary circuits (never materialised) ------------------------------------------------
    def embed_at(self, layer: int) -> Tensor:
        """W_E as the attention of `layer` reads it directly: divided by the frozen ln1 scale."""
        return self.W_E / self.ln.ln1_scale[layer]

    def unembed(self) -> Tensor:
        """W_U with the final norm's frozen scale applied: [d, V]."""
        return self.W_U / self.ln.ln_final_scale

    def check_head(self, layer: int, head: int) -> None:
        if not 0 <= layer < self.n_layers:
            raise InputError(f"layer {layer} is out of range; the model has {self.n_layers}")
        if not 0 <= head < self.n_heads:
            raise InputError(f"head {head} is out of range; layers have {self.n_heads} heads")


@isolated
def circuit_weights(
    model: HookedTransformer,
    reference: Tensor | None = None,
    freeze_scales: bool = True,
) -> CircuitWeights:
    """Fold and centre `model`'s weights; freeze norm scales from `reference` tokens.

    With `freeze_scales` and no `reference`, a batch of repeated random tokens is used (what the
    head detectors read). MLPs are not part of these circuits; grouped-query models arrive with
    W_K/W_V expanded to every query head.
    """
    cfg = model.cfg
    f64 = torch.float64
    with torch.no_grad():
        W_E = model.W_E.detach().to(f64)
        W_pos = None if model.W_pos is None else model.W_pos.detach().to(f64)
        W_Q, W_K, W_V, b_Q, b_K, b_V, W_O, b_O = (
            _stacked(model, n) for n in ("W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V", "W_O", "b_O")
        )
        W_U = model.W_U.detach().to(f64)
        b_U = (
            torch.zeros(cfg.d_vocab, dtype=f64, device=model.device)
            if model.b_U is None
            else model.b_U.to(f64)
        )
        kind = cfg.normalization
        centered = kind == "LN"
        if kind != "none":
            for layer, block in enumerate(model._blocks()):
                for W, b in ((W_Q, b_Q), (W_K, b_K), (W_V, b_V)):
                    W[layer], b[layer] = fold_norm(block.ln1, W[layer], b[layer], centered)
            if cfg.final_norm:
                W_U, b_U = fold_norm(model.ln_final, W_U, b_U, centered)
        if centered:
            W_E = center(W_E)
            W_pos = None if W_pos is None else center(W_pos)
            W_O = center(W_O)
            b_O = center(b_O)
        ln1 = [1.0] * cfg.n_layers
        lnf = 1.0
        frozen_from: str | None = None
        if kind != "none" and freeze_scales:
            if reference is None:
                reference = repeated_tokens(model, min(50, (cfg.n_ctx - 1) // 2), 8, seed=0)
            ln1, lnf = _mean_scales(model, reference)
            frozen_from = (
                f"a reference batch of {reference.shape[0]}x{reference.shape[1]} tokens "
                "(positions after the first)"
            )
            if not cfg.final_norm:
                lnf = 1.0
    handling = LayerNormHandling(kind, kind != "none", centered, frozen_from, ln1, lnf)
    return CircuitWeights(
        W_E, W_pos, W_Q, W_K, W_V, b_Q, b_K, b_V, W_O, b_O, W_U, b_U, cfg.attn_scale, handling
    )


def _stacked(model: HookedTransformer, name: str) -> Tensor:
    """A stacked weight in float64; an empty [0, ...] tensor for a zero-layer model."""
    cfg = model.cfg
    if cfg.n_layers:
        return getattr(model, name).detach().to(torch.float64)  # type: ignore[no-any-return]
    H, d, dh = cfg.n_heads, cfg.d_model, cfg.d_head
    shape = {"W_O": (0, H, dh, d), "b_O": (0, d)}.get(name)
    if shape is None:
        shape = (0, H, d, dh) if name.startswith("W") else (0, H, dh)
    return torch.zeros(shape, dtype=torch.float64, device=model.device)


@torch.no_grad()
def _mean_scales(model: HookedTransformer, reference: Tensor) -> tuple[list[float], float]:
    """Mean norm scale at each attention input and at the final norm (positions >= 1)."""
    if reference.ndim != 2 or reference.shape[1] < 2:
        raise InputError("the reference batch must be token ids [batch, pos] with pos >= 2")
    _, cache = model.run_with_cache(
        reference.to(model.device), names_filter=lambda n: n.endswith("hook_scale")
    )
    ln1 = []
    for layer in range(model.cfg.n_layers):
        ln1.append(float(cache[f"blocks.{layer}.ln1.hook_scale"][:, 1:].double().mean()))
    name = "ln_final.hook_scale"
    lnf = float(cache[name][:, 1:].double().mean()) if name in cache else 1.0
    return ln1, lnf
