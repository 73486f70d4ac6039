"""Cost of the logit lens over every layer boundary, as a ratio to one plain forward pass.

For `mini` (or a random stand-in of its shape when it is not trained yet) and a random model of
GPT-2 small's size (12 layers, d_model 768, vocab 50257), on 128 tokens, one thread:

  macs_per_token      multiply-accumulates per token: the forward (blocks + one unembedding),
                      the full lens (blocks + one unembedding per boundary), and their ratio
                      `mac_ratio`: what the lens must cost at equal matmul efficiency
  forward_s           one plain forward pass (logits); blocks_s: the same without unembedding
  unembed_s           the bare unembedding matmul of 128 residuals as the forward does it (`@`,
                      MKL); unembed_onednn_s / unembed_bf16_s: oneDNN float32 / bfloat16
  floor_ratio         the least an exact full-vocabulary lens can cost here, over forward_s:
                      blocks_s + unembed_s (the last boundary: the forward's own logits)
                      + (boundaries - 1) x unembed_onednn_s (the fastest exact kernel here)
  lens_ratio          `logit_lens` (every boundary x position x the whole vocabulary, reduced to
                      top-k, entropy, KL to the final layer, ranks) over forward_s (goal <= 1.5);
                      lens_over_floor = lens_s / floor_s
  lens_bf16_ratio     the same with precision="bf16"; floor_bf16_ratio its floor
  ecco_ratio          the query `--generate` answers (every boundary at the 16 positions that
                      chose 16 generated tokens, the first being the chosen position: ranks of
                      the generated tokens, top-k, watched tokens), over forward_s
  last_position_ratio every boundary at the last position only, over forward_s
  peer_tl_ratio       the full lens done the TransformerLens way (run_with_cache,
                      accumulated_resid(apply_ln=True), @ W_U, log_softmax) over TL's forward;
                      peer_tl_lens_s its time, and lens_vs_peer_tl = peer_tl_lens_s / lens_s

Timings are the minimum over interleaved repetitions (the machine may be shared). Prints ONE JSON
object.
"""

from __future__ import annotations

import lenscope  # noqa: F401  before torch: large tensors on huge pages (lenscope.runtime)

# isort: split

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import interleaved_best, machine

from lenscope import HookedTransformer, ModelConfig
from lenscope.errors import ModelNotFoundError
from lenscope.lens import logit_lens
from lenscope.lens.boundaries import collect_residuals, lens_boundaries
from lenscope.lens.reduce import reduce_lens
from lenscope.lens.unembed import unembed_rows
from lenscope.model.load import load_model

N_TOKENS = 128
N_GENERATED = 16


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


def lens_macs(cfg: ModelConfig, n_tokens: int) -> dict[str, Any]:
    """Multiply-accumulates per token, averaged over a causal sequence of n_tokens."""
    d = cfg.d_model
    per_layer = 4 * d * d + d * (n_tokens + 1)  # Q, K, V, O; scores and mixing over ~n/2 keys
    if not cfg.attn_only:
        per_layer += (3 if cfg.gated_mlp else 2) * d * cfg.d_mlp
    blocks = cfg.n_layers * per_layer
    unembed = d * cfg.d_vocab
    n_bounds = cfg.n_layers + 1
    forward, lens = blocks + unembed, blocks + n_bounds * unembed
    return {
        "blocks": blocks,
        "unembed": unembed,
        "forward": forward,
        "lens": lens,
        "mac_ratio": round(lens / forward, 2),
        "ecco_mac_ratio": round(
            (forward + (n_bounds - 1) * unembed * N_GENERATED / n_tokens) / forward, 2
        ),
    }


def _tl_peer(cfg: ModelConfig, tokens: torch.Tensor) -> dict[str, float] | None:
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
        t = interleaved_best({"fwd": lambda: tl(tokens), "lens": lens}, 2)
    return t


def bench(model: HookedTransformer, label: str, peer: bool, reps: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, model.cfg.d_vocab, (1, N_TOKENS), generator=g)
    bounds = lens_boundaries(model.cfg)
    n = model.cfg.n_layers
    targets = torch.cat([tokens[0, 1:], tokens[0, :1]])[:, None]
    chosen = N_TOKENS - N_GENERATED - 1  # the last prompt token, then the generated ones
    ecco_rows = torch.arange(chosen, N_TOKENS - 1)
    last_row = torch.tensor([N_TOKENS - 1])

    def rows_only(rows: torch.Tensor) -> Callable[[], Any]:
        def run() -> Any:
            resids = collect_residuals(model, tokens, bounds)
            return reduce_lens(model, resids, bounds, targets, 10, rows=rows)

        return run

    with torch.no_grad():
        x = model.ln_final(model(tokens, stop_at_layer=n))[0]
        w = model.W_U
        t = interleaved_best(
            {
                "forward": lambda: model(tokens),
                "blocks": lambda: model(tokens, stop_at_layer=n),
                "unembed": lambda: unembed_rows(model, x),
                "unembed_torch": lambda: x @ w,
                "unembed_bf16": lambda: unembed_rows(model, x, "bf16"),
                "lens": lambda: logit_lens(model, tokens, k=10),
                "lens_bf16": lambda: logit_lens(model, tokens, k=10, precision="bf16"),
                "ecco": rows_only(ecco_rows),
                "last": rows_only(last_row),
            },
            reps,
        )
    fwd = t["forward"]
    nb = len(bounds)
    floor = t["blocks"] + nb * t["unembed"]
    floor_bf16 = t["blocks"] + t["unembed"] + (nb - 1) * t["unembed_bf16"]
    out: dict[str, Any] = {
        "model": label,
        "n_layers": n,
        "d_model": model.cfg.d_model,
        "d_vocab": model.cfg.d_vocab,
        "tokens": N_TOKENS,
        "boundaries": nb,
        "macs_per_token": lens_macs(model.cfg, N_TOKENS),
        **{f"{k}_s": round(v, 4) for k, v in t.items()},
        "floor_ratio": round(floor / fwd, 2),
        "lens_ratio": round(t["lens"] / fwd, 2),
        "lens_over_floor": round(t["lens"] / floor, 2),
        "floor_bf16_ratio": round(floor_bf16 / fwd, 2),
        "lens_bf16_ratio": round(t["lens_bf16"] / fwd, 2),
        "ecco_ratio": round(t["ecco"] / fwd, 2),
        "last_position_ratio": round(t["last"] / fwd, 2),
        "unembed_speedup_vs_torch": round(t["unembed_torch"] / t["unembed"], 2),
        "unembed_bf16_speedup": round(t["unembed"] / t["unembed_bf16"], 2),
    }
    if peer:
        tl = _tl_peer(model.cfg, tokens)
        if tl is not None:
            out["peer_tl_ratio"] = round(tl["lens"] / tl["fwd"], 2)
            out["peer_tl_lens_s"] = round(tl["lens"], 4)
            out["lens_vs_peer_tl"] = round(tl["lens"] / t["lens"], 2)
    return out


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    mini, label = _mini()
    results = [
        bench(mini, label, peer=False, reps=7),
        bench(_gpt2_small(), "gpt2-small-size", peer=True, reps=3),
    ]
    out = {"benchmark": "lens", "threads": torch.get_num_threads(), "cases": results}
    out["machine"] = machine()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
