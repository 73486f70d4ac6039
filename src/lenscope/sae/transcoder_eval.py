"""`evaluate_transcoders`: how well a transcoder set stands in for a model's MLPs.

On held-out windows:
- per layer: FVU = sum |y - y_hat|^2 / sum |y - mean y|^2 of the MLP output y predicted from the
  model's own MLP input (for a cross-layer set, y_hat_j sums every source layer i <= j); L0 (mean
  active latents per token); dead fraction (latents that never fire on the evaluated tokens).
- the replacement model: every MLP output replaced by its transcoder's prediction from the
  replacement model's own (already changed) inputs, no error term; its next-token loss L_repl
  against the original model's L_orig and the model with every MLP output zeroed, L_zero:
  loss_recovered = (L_zero - L_repl) / (L_zero - L_orig).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lenscope.data import iter_eval_batches
from lenscope.data.stream import TokenArray
from lenscope.errors import InputError
from lenscope.jsonable import JsonResult
from lenscope.model import HookedTransformer
from lenscope.model.hooks import HookSpec
from lenscope.sae.dictionary import Dictionary
from lenscope.sae.transcoder_set import TranscoderSet


@dataclass
class LayerFigures(JsonResult):
    layer: int
    fvu: float
    l0: float
    dead_fraction: float


@dataclass
class TranscoderEvalResult(JsonResult):
    model: str
    transcoders: str
    n_tokens: int
    layers: list[LayerFigures]
    fvu: float  # over every layer's outputs together
    l0: float  # mean over layers
    dead_fraction: float  # over every layer's latents
    ce_orig: float
    ce_replaced: float
    ce_zero: float
    loss_recovered: float

    def figures(self) -> dict[str, Any]:
        """What a set's manifest records."""
        return {
            "eval_tokens": self.n_tokens,
            "fvu": self.fvu,
            "fvu_per_layer": {str(x.layer): x.fvu for x in self.layers},
            "l0": self.l0,
            "l0_per_layer": {str(x.layer): x.l0 for x in self.layers},
            "dead_fraction": self.dead_fraction,
            "dead_fraction_per_layer": {str(x.layer): x.dead_fraction for x in self.layers},
            "ce_orig": self.ce_orig,
            "ce_replaced": self.ce_replaced,
            "ce_zero": self.ce_zero,
            "loss_recovered": self.loss_recovered,
        }


def replacement_hooks(dics: list[Dictionary]) -> list[HookSpec]:
    """Forward hooks that replace every output hook of `dics` by the sum of their predictions
    (each dictionary's latents from its input in this same pass; no error term)."""
    state: dict[int, tuple[Tensor, Tensor]] = {}
    writers: dict[str, list[int]] = {}
    for i, d in enumerate(dics):
        for h in d.hooks_out:
            writers.setdefault(h, []).append(i)

    def on_in(i: int) -> Callable[[Tensor, Any], None]:
        def fn(x: Tensor, _hook: Any) -> None:
            state[i] = (x, dics[i].latents(x))

        return fn

    def on_out(h: str) -> Callable[[Tensor, Any], Tensor]:
        def fn(y: Tensor, _hook: Any) -> Tensor:
            out = torch.zeros_like(y)
            for i in writers[h]:
                x, f = state[i]
                out = out + dics[i].decode(f, x, h).to(y.dtype)
            return out

        return fn

    specs: list[HookSpec] = [(d.hook_in, on_in(i)) for i, d in enumerate(dics)]
    return specs + [(h, on_out(h)) for h in writers]


def _zero(y: Tensor, _hook: Any) -> Tensor:
    return torch.zeros_like(y)


@torch.no_grad()
def evaluate_transcoders(
    model: HookedTransformer,
    ts: TranscoderSet,
    tokens: TokenArray,
    *,
    n_tokens: int = 32768,
    ctx: int | None = None,
    batch_size: int = 8,
    strict: bool = True,
    progress: bool = False,
) -> TranscoderEvalResult:
    """Evaluate `ts` on the first `n_tokens` tokens (whole windows) of a held-out stream."""
    ts.check(model, strict=strict)
    ctx = ctx or model.cfg.n_ctx
    if not 2 <= ctx <= model.cfg.n_ctx:
        raise InputError(f"evaluation windows need 2 to {model.cfg.n_ctx} tokens, got {ctx}")
    if n_tokens < ctx:
        raise InputError(f"evaluate at least one window of {ctx} tokens (got n_tokens={n_tokens})")
    max_batches = max(1, math.ceil(n_tokens / (ctx * batch_size)))
    batches = list(iter_eval_batches(tokens, batch_size, ctx, max_batches))
    dics = ts.dictionaries()
    outs = [f"blocks.{layer}.{ts.cfg.hook_out}" for layer in ts.cfg.layers]
    L, S = len(outs), ts.cfg.d_sae
    fires = torch.zeros(len(dics), S, dtype=torch.long)
    sse = torch.zeros(L, dtype=torch.float64)
    sy = torch.zeros(L, ts.cfg.d_out, dtype=torch.float64)
    sy2 = torch.zeros(L, dtype=torch.float64)
    l0 = torch.zeros(len(dics), dtype=torch.float64)
    nll = {"orig": 0.0, "replaced": 0.0, "zero": 0.0}
    n_pos = n_pred = 0
    bar = _bar(progress)
    task = bar.add_task("evaluating", total=len(batches))
    bar.start()
    try:
        names = {d.hook_in for d in dics} | set(outs)
        for b in batches:
            b = b.to(model.device)
            logits, cache = model.run_with_cache(b, names_filter=lambda n: n in names)
            lat = []
            for i, d in enumerate(dics):
                f = d.latents(cache[d.hook_in])
                lat.append(f)
                active = (f != 0).reshape(-1, S)
                l0[i] += float(active.sum())
                fires[i] += active.sum(0).cpu()
            for j, h in enumerate(outs):
                y = cache[h].double()
                pred = torch.zeros_like(y)
                for i, d in enumerate(dics):
                    if h in d.hooks_out:
                        pred += d.decode(lat[i], cache[d.hook_in], h).double()
                sse[j] += float(((y - pred) ** 2).sum())
                sy[j] += y.reshape(-1, y.shape[-1]).sum(0).cpu()
                sy2[j] += float((y**2).sum())
            n = b.shape[0] * (b.shape[1] - 1)
            nll["orig"] += float(model.loss(logits, b)) * n
            rep = model.run_with_hooks(b, fwd_hooks=replacement_hooks(dics))
            nll["replaced"] += float(model.loss(rep, b)) * n
            zero = model.run_with_hooks(b, fwd_hooks=[(h, _zero) for h in outs])
            nll["zero"] += float(model.loss(zero, b)) * n
            n_pred += n
            n_pos += b.shape[0] * b.shape[1]
            bar.advance(task)
    finally:
        bar.stop()
    sst = sy2 - (sy**2).sum(1) / n_pos
    ce = {k: v / n_pred for k, v in nll.items()}
    dead = (fires == 0).double().mean(1)
    layers = [
        LayerFigures(
            layer=ts.cfg.layers[j],
            fvu=float(sse[j] / sst[j]) if sst[j] > 0 else float("nan"),
            l0=float(l0[j] / n_pos),
            dead_fraction=float(dead[j]),
        )
        for j in range(L)
    ]
    gap = ce["zero"] - ce["orig"]
    return TranscoderEvalResult(
        model=model.cfg.name,
        transcoders=ts.name,
        n_tokens=n_pos,
        layers=layers,
        fvu=float(sse.sum() / sst.sum()),
        l0=float(l0.mean() / n_pos),
        dead_fraction=float((fires == 0).double().mean()),
        ce_orig=ce["orig"],
        ce_replaced=ce["replaced"],
        ce_zero=ce["zero"],
        loss_recovered=(ce["zero"] - ce["replaced"]) / gap if gap != 0 else float("nan"),
    )


def _bar(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("[bold]transcoder eval[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
