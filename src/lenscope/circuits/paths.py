"""Path expansion of an attention-only model's logits on one prompt, exact to rounding.

With the attention patterns and the norms' scales frozen at their values in the forward pass on
the prompt, an attention-only transformer is linear in each path through it. For up to two
layers the logits split into

* `direct`: the embedding (token + position) read straight by the unembedding;
* `L0.Hh`: each first-layer head's output (for one layer: each head);
* `L1.Hj`: each second-layer head reading the embedding;
* `L0.Hh>L1.Hj`: virtual heads, the second-layer head reading the first-layer head's output
  (V-composition, pattern A^j A^h);
* `remainder`: every bias (b_V, b_O, norm biases, b_U) and what flows through them.

The terms sum to the model's logits (checked in `max_abs_error`). Computed in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.jsonable import JsonResult
from lenscope.model.norms import Norm, norm_params, push
from lenscope.model.transformer import HookedTransformer
from lenscope.model.view import isolated
from lenscope.nodes import head_node_id


@dataclass(frozen=True, eq=False)
class PathExpansion(JsonResult):
    """terms[i] [pos, vocab] is the contribution of path `names[i]` to the logits."""

    tokens: list[int]
    names: list[str]
    terms: Tensor  # [n_terms, pos, vocab] float64
    logits: Tensor  # [pos, vocab] the model's own logits (float64 copy)
    layernorm: str

    @property
    def total(self) -> Tensor:
        return self.terms.sum(0)

    @property
    def max_abs_error(self) -> float:
        return float((self.total - self.logits).abs().max())

    def term(self, name: str) -> Tensor:
        if name not in self.names:
            raise InputError(f"no path {name!r}; paths: {', '.join(self.names)}")
        return self.terms[self.names.index(name)]

    def contributions(self, position: int, token: int) -> dict[str, float]:
        """Each path's contribution to one logit."""
        p, v = self.logits.shape
        if not -p <= position < p or not 0 <= token < v:
            raise InputError(f"position {position} / token {token} outside [{p}] x [{v}]")
        return {n: float(t[position, token]) for n, t in zip(self.names, self.terms, strict=True)}

    def to_json(self) -> dict[str, Any]:
        """Per path, its contribution to the logit of the actual next token at each position."""
        nxt = self.tokens[1:]
        dev = self.logits.device
        idx = torch.arange(len(nxt), device=dev)
        tgt = torch.tensor(nxt, dtype=torch.long, device=dev)
        return {
            "tokens": self.tokens,
            "layernorm": self.layernorm,
            "max_abs_error": self.max_abs_error,
            "next_token_logit": {
                n: t[idx, tgt].tolist() for n, t in zip(self.names, self.terms, strict=True)
            },
        }


@torch.no_grad()
@isolated
def path_expansion(model: HookedTransformer, tokens: Tensor) -> PathExpansion:
    """Decompose `model`'s logits on `tokens` (one prompt, [pos] or [1, pos]) into paths."""
    cfg = model.cfg
    if not cfg.attn_only or cfg.n_layers > 2:
        raise InputError(
            f"path expansion covers attention-only models with at most 2 layers; {cfg.name} has "
            f"{cfg.n_layers} layers{'' if cfg.attn_only else ' and MLPs'}"
        )
    if cfg.positional == "rotary":
        raise InputError("path expansion needs learned or no positions; this model is rotary")
    toks = tokens if tokens.ndim == 2 else tokens[None]
    if toks.shape[0] != 1:
        raise InputError("path expansion takes one prompt; pass tokens of shape [pos]")
    logits32, cache = model.run_with_cache(
        toks, names_filter=lambda n: n.endswith(("hook_scale", "hook_pattern"))
    )
    f = torch.float64
    t = toks[0].to(model.device)
    embed = model.W_E[t].to(f)
    if model.W_pos is not None:
        embed = embed + model.W_pos[: t.shape[0]].to(f)

    def lin(name: str, norm: Norm) -> tuple[Callable[[Tensor], Tensor], Tensor]:
        """The norm as (linear part x -> C(x) / s * w, bias b) with its scale frozen."""
        s = None if norm.w is None else cache[name][0].to(f)  # [pos, 1]
        return (lambda x: push(norm, s, x)), norm_params(norm, cfg.d_model, device=model.device)[1]

    W_V, W_O, b_V, b_O = (
        (model.W_V.to(f), model.W_O.to(f), model.b_V.to(f), model.b_O.to(f))
        if cfg.n_layers
        else (torch.zeros(0, dtype=f, device=model.device),) * 4
    )
    W_U = model.W_U.to(f)
    b_U = (
        torch.zeros(cfg.d_vocab, dtype=f, device=model.device)
        if model.b_U is None
        else model.b_U.to(f)
    )
    final, b_final = lin("ln_final.hook_scale", model.ln_final)

    def to_logits(x: Tensor) -> Tensor:
        return final(x) @ W_U

    def head_out(layer: int, h: int, read: Tensor, with_bias: bool) -> Tensor:
        """Head h of `layer` on an already-normalised input `read` [pos, d]."""
        pat = cache[f"blocks.{layer}.attn.hook_pattern"][0, h].to(f)
        v = read @ W_V[layer, h] + (b_V[layer, h] if with_bias else 0.0)
        return pat @ v @ W_O[layer, h]

    names, terms = ["direct"], [to_logits(embed)]
    remainder = b_final @ W_U + b_U  # constants first
    outs0: list[Tensor] = []
    if cfg.n_layers >= 1:
        norm0, b0 = lin("blocks.0.ln1.hook_scale", model._blocks()[0].ln1)
        for h in range(cfg.n_heads):
            read = norm0(embed) + b0
            outs0.append(head_out(0, h, read, with_bias=True))
            names.append(head_node_id(0, h))
            terms.append(to_logits(outs0[-1]))
        resid_bias = b_O[0].expand(t.shape[0], -1)
        remainder = remainder + to_logits(resid_bias)
    if cfg.n_layers == 2:
        norm1, b1 = lin("blocks.1.ln1.hook_scale", model._blocks()[1].ln1)
        for j in range(cfg.n_heads):
            names.append(head_node_id(1, j))
            terms.append(to_logits(head_out(1, j, norm1(embed), with_bias=False)))
        for h in range(cfg.n_heads):
            for j in range(cfg.n_heads):
                names.append(f"{head_node_id(0, h)}>{head_node_id(1, j)}")
                terms.append(to_logits(head_out(1, j, norm1(outs0[h]), with_bias=False)))
        const_read = norm1(resid_bias) + b1  # what layer 1 reads from the biases
        bias_out = sum(
            (head_out(1, j, const_read, with_bias=True) for j in range(cfg.n_heads)),
            torch.zeros_like(embed),
        )
        remainder = remainder + to_logits(bias_out + b_O[1].expand(t.shape[0], -1))
    names.append("remainder")
    terms.append(remainder.expand(t.shape[0], -1))
    return PathExpansion(
        tokens=[int(x) for x in t.tolist()],
        names=names,
        terms=torch.stack(terms),
        logits=logits32[0].to(f),
        layernorm=_describe(cfg.normalization),
    )


def _describe(kind: str) -> str:
    if kind == "none":
        return "no normalisation: the expansion is exact"
    return (
        f"{'LayerNorm' if kind == 'LN' else 'RMSNorm'} scales frozen at their values in this "
        "forward pass (per position), norm weights applied in each path, norm biases in the "
        "remainder"
    )
