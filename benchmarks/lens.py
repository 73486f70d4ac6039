"""Cost of the logit lens over every layer boundary, as a ratio to one plain forward pass.

For `mini` (or a random stand-in of its shape when it is not trained yet) and a random model of
GPT-2 small's size (12 layers, d_model 768, vocab 50257), on 128 tokens:

  forward_s            one plain forward pass (logits)
  lens_s               `logit_lens`: every boundary's full-vocabulary distribution at every
                       position, reduced to top-k, entropy, KL to the final layer, ranks
  lens_ratio           lens_s / forward_s (the issue's goal: <= 1.5)
  floor_ratio          what any exact full-vocabulary lens must pay at least: the blocks once plus
                       one unembedding matmul per boundary, measured here, over forward_s
  last_position_ratio  every boundary's lens at the last position only (what a generation step
                       or `layer_predictions` needs), over forward_s
  peer_tl_ratio        the same full lens done the TransformerLens way (run_with_cache,
                       accumulated_resid(apply_ln=True), @ W_U, log_softmax) over TL's own forward

Timings are the minimum over interleaved repetitions (the machine may be shared). Prints ONE JSON
object.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import torch

from lenscope import HookedTransformer, ModelConfig
from lenscope.errors import ModelNotFoundError
from lenscope.lens import collect_residuals, lens_boundaries, logit_lens, project
from lenscope.model.load import load_model

N_TOKENS = 128
REPS = 5


def _timer(fns: dict[str, Callable[[], Any]], reps: int = REPS) -> dict[str, float]:
    best = dict.fromkeys(fns, float("inf"))
    for f in fns.values():
        f()  # warm up
    for _ in range(reps):
        for name, f in fns.items():
            t0 = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _mini() -> tuple[HookedTransformer, str]:
    try:
        return load_model("mini"), "mini"
    except ModelNotFoundError:
        cfg = ModelConfig(
            n_layers=4,
            d_model=256,
            n_heads=8,
            d_vocab=4096,
            n_ctx=256,
            d_mlp=1024,
            tie_embeddings=True,
            name="mini-standin",
        )
        return HookedTransformer(cfg).eval(), "mini-shaped random stand-in (mini not trained yet)"


def _gpt2_small() -> HookedTransformer:
    cfg = ModelConfig(
        n_layers=12,
        d_model=768,
        n_heads=12,
        d_vocab=50257,
        n_ctx=1024,
        d_mlp=3072,
        tie_embeddings=True,
        name="gpt2-small-size",
    )
    return HookedTransformer(cfg).eval()


def _tl_peer(cfg: ModelConfig, tokens: torch.Tensor) -> float | None:
    try:
        from transformer_lens import HookedTransformer as TLModel
        from transformer_lens import HookedTransformerConfig
    except ImportError:
        return None
    tl = TLModel(
        HookedTransformerConfig(
            n_layers=cfg.n_layers,
            d_model=cfg.d_model,
            n_heads=cfg.n_heads,
            d_head=cfg.d_head,
            d_mlp=cfg.d_mlp,
            d_vocab=cfg.d_vocab,
            n_ctx=cfg.n_ctx,
            act_fn="gelu_new",
            normalization_type="LN",
        )
    ).eval()

    def lens() -> None:
        _, cache = tl.run_with_cache(tokens, names_filter=lambda n: "resid" in n)
        stack = cache.accumulated_resid(apply_ln=True)
        assert isinstance(stack, torch.Tensor)
        (stack @ tl.W_U).log_softmax(-1)

    with torch.no_grad():
        t = _timer({"fwd": lambda: tl(tokens), "lens": lens})
    return t["lens"] / t["fwd"]


def bench(model: HookedTransformer, label: str, peer: bool) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, model.cfg.d_vocab, (1, N_TOKENS), generator=g)
    bounds = lens_boundaries(model.cfg)
    n = model.cfg.n_layers

    def last_position() -> None:
        resids = collect_residuals(model, tokens, bounds)
        for r, b in zip(resids, bounds, strict=True):
            project(model, r[:, -1:], b).log_softmax(-1)

    with torch.no_grad():
        x = model(tokens, stop_at_layer=n)
        t = _timer(
            {
                "forward": lambda: model(tokens),
                "lens": lambda: logit_lens(model, tokens, k=10),
                "blocks": lambda: model(tokens, stop_at_layer=n),
                "unembed": lambda: model.unembed_resid(model.ln_final(x)),
                "last": last_position,
            }
        )
    fwd = t["forward"]
    out: dict[str, Any] = {
        "model": label,
        "n_layers": n,
        "d_model": model.cfg.d_model,
        "d_vocab": model.cfg.d_vocab,
        "tokens": N_TOKENS,
        "boundaries": len(bounds),
        "forward_s": round(fwd, 4),
        "lens_s": round(t["lens"], 4),
        "lens_ratio": round(t["lens"] / fwd, 2),
        "floor_ratio": round((t["blocks"] + len(bounds) * t["unembed"]) / fwd, 2),
        "last_position_ratio": round(t["last"] / fwd, 2),
    }
    if peer:
        r = _tl_peer(model.cfg, tokens)
        out["peer_tl_ratio"] = None if r is None else round(r, 2)
    return out


def main() -> None:
    torch.manual_seed(0)
    mini, label = _mini()
    results = [bench(mini, label, peer=False), bench(_gpt2_small(), "gpt2-small-size", peer=True)]
    print(json.dumps({"benchmark": "lens", "threads": torch.get_num_threads(), "cases": results}))


if __name__ == "__main__":
    main()
