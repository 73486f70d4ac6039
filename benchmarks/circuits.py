"""Circuit analysis speed and agreement: lenscope vs TransformerLens on the same weights.

An attention stack of 6 layers x 8 heads, d_model 512, d_head 64 (no norms, so the two libraries
see identical matrices) with random weights; larger stacks make TransformerLens materialise
(n_heads_total^2 x d_model x d_head) tensors (9+ GB at GPT-2 small). Prints one JSON object:
  * Q/K/V composition scores for all head pairs: seconds and the ratio TL / lenscope,
    and the largest difference between the two (lenscope works in float64, TL in float32);
  * the copying score of one head from the d_head x d_head side vs numpy's dense eigenvalues of
    the d_vocab x d_vocab full OV circuit (the definition), with both values;
  * one row of a full OV circuit (top entries for a token) vs materialising the whole matrix.
"""

from __future__ import annotations

import lenscope  # noqa: F401  before torch: large tensors on huge pages (lenscope.runtime)

# isort: split

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, median_seconds

from lenscope import HookedTransformer, ModelConfig
from lenscope.circuits import circuit_weights, composition_scores, copying_scores, full_ov
from lenscope.circuits.composition import Mode

L, H, D, DH, V = 6, 8, 512, 64, 1024


def models() -> tuple[HookedTransformer, Any]:
    from transformer_lens import HookedTransformer as TLModel
    from transformer_lens import HookedTransformerConfig

    cfg = ModelConfig(
        n_layers=L, d_model=D, n_heads=H, d_vocab=V, n_ctx=64, attn_only=True,
        normalization="none", name="bench",
    )  # fmt: skip
    ours = HookedTransformer(cfg).eval()
    tl_cfg = HookedTransformerConfig(
        n_layers=L, d_model=D, n_heads=H, d_head=DH, d_vocab=V, n_ctx=64, attn_only=True,
        normalization_type=None, act_fn="relu",
    )  # fmt: skip
    tl = TLModel(tl_cfg).eval()
    with torch.no_grad():
        for layer in range(L):
            a: Any = tl.blocks[layer].attn
            a.W_Q.copy_(ours.W_Q[layer])
            a.W_K.copy_(ours.W_K[layer])
            a.W_V.copy_(ours.W_V[layer])
            a.W_O.copy_(ours.W_O[layer])
    return ours, tl


def main() -> None:
    torch.manual_seed(0)
    torch.set_grad_enabled(False)  # neither library needs autograd here
    ours, tl = models()
    out: dict[str, object] = {"shape": f"{L} layers x {H} heads, d_model {D}, d_head {DH}"}
    out["threads"] = torch.get_num_threads()
    comp: dict[str, object] = {}
    modes: tuple[Mode, ...] = ("Q", "K", "V")
    for mode in modes:
        mine = composition_scores(circuit_weights(ours, freeze_scales=False), mode).scores
        theirs = tl.all_composition_scores(mode).detach().double()
        valid = ~torch.isnan(mine)
        diff = float((mine[valid] - theirs[valid]).abs().max())

        def run_ours(m: Mode = mode) -> object:
            return composition_scores(circuit_weights(ours, freeze_scales=False), m)

        def run_tl(m: Mode = mode) -> object:
            return tl.all_composition_scores(m)

        t_ours = median_seconds(run_ours, repeats=3)
        t_tl = median_seconds(run_tl, repeats=3)
        comp[mode] = {
            "lenscope_s": t_ours,
            "transformer_lens_s": t_tl,
            "speedup_vs_tl": t_tl / t_ours,
            "max_abs_diff": diff,
        }
    out["composition"] = comp

    cw = circuit_weights(ours, freeze_scales=False)
    t_copy = median_seconds(lambda: copying_scores(cw), repeats=3)
    dense = full_ov(cw, 5, 7).AB.numpy()
    t_dense_eig = median_seconds(lambda: np.linalg.eigvals(dense), repeats=1, warmup=0)
    ev = np.linalg.eigvals(dense)
    out["copying"] = {
        "all_heads_factored_s": t_copy,
        "one_head_dense_eig_s": t_dense_eig,
        "speedup_per_head": t_dense_eig / (t_copy / (L * H)),
        "factored_score": copying_scores(cw).of(5, 7),
        "dense_score": float(ev.real.sum() / np.abs(ev).sum()),
    }
    fm = full_ov(cw, 5, 7)
    t_row = median_seconds(lambda: fm.rows([17]).AB.topk(10), repeats=5)
    t_full = median_seconds(lambda: fm.AB[17].topk(10), repeats=3)
    out["ov_row"] = {"row_s": t_row, "materialised_s": t_full, "speedup": t_full / t_row}
    out["machine"] = machine()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
