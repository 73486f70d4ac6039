"""Forward-pass speed: lenscope vs transformers vs TransformerLens on the same GPT-2-small weights.

Prints one JSON object: tokens/s of each and the ratios the issue sets goals for
(lenscope no-hook forward / transformers >= 1.0; lenscope full cache / TL run_with_cache >= 1.5),
and greedy generation with lenscope's KV cache, without it, and by transformers' `generate`.
`--device cuda` runs all of them on the GPU (TransformerLens is left out where it is not
installed, and said so).
"""

from __future__ import annotations

import lenscope  # noqa: F401  before torch: large tensors on huge pages (lenscope.runtime)

# isort: split

import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_device, gpt2_small_random, machine, matmul_gflops, median_seconds

from lenscope import HookedTransformer, load_model


def tl_model(hf: torch.nn.Module, device: torch.device) -> torch.nn.Module | None:
    try:
        from transformer_lens import HookedTransformer, HookedTransformerConfig
    except ImportError:
        return None
    from transformer_lens.pretrained.weight_conversions.gpt2 import convert_gpt2_weights

    cfg = HookedTransformerConfig(
        n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257, n_ctx=1024,
        act_fn="gelu_new", normalization_type="LN", default_prepend_bos=False,
    )  # fmt: skip
    m = HookedTransformer(cfg)
    m.load_state_dict(convert_gpt2_weights(hf, cfg), strict=False)
    return m.eval().to(device)


def forward_flops(model: HookedTransformer, b: int, p: int) -> float:
    """Floating-point operations of one forward over b x p tokens, counting the matmuls only
    (QKV, attention scores and values over the causal prefix, attention out, MLP, unembedding)."""
    c = model.cfg
    d_attn = c.n_heads * c.d_head
    per_token = c.n_layers * (d_attn * c.d_model * 4 + 2 * c.d_model * c.d_mlp)
    per_token += c.d_model * c.d_vocab
    attention = c.n_layers * d_attn * 2 * b * p * (p + 1) / 2  # q.k and pattern.v, causal
    return 2.0 * (per_token * b * p + attention)


def main() -> None:
    dev = bench_device()
    torch.manual_seed(0)
    hf, d = gpt2_small_random()
    hf = hf.to(dev)
    ours = load_model(d, device=dev)
    tl = tl_model(hf, dev)
    out: dict[str, object] = {
        "model": "gpt2-small-sized random",
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "transformer_lens": "installed" if tl is not None else "not installed: left out",
    }
    nan = float("nan")
    for b, p in ((1, 128), (8, 128)):
        toks = torch.randint(0, 50257, (b, p)).to(dev)
        with torch.no_grad():
            ref = hf(toks).logits
            assert (ours(toks) - ref).abs().max() < 1e-3
            t_hf = median_seconds(lambda t=toks: hf(t))
            t_ours = median_seconds(lambda t=toks: ours(t))
            t_ours_cache = median_seconds(lambda t=toks: ours.run_with_cache(t))
            t_tl = t_tl_cache = nan
            if tl is not None:
                assert (tl(toks) - ref).abs().max() < 1e-3
                t_tl = median_seconds(lambda t=toks: tl(t))
                t_tl_cache = median_seconds(lambda t=toks: tl.run_with_cache(t))
        n = b * p
        key = f"{b}x{p}"
        out[key] = {
            "tokens_per_s": {
                "lenscope_forward": n / t_ours,
                "lenscope_run_with_cache": n / t_ours_cache,
                "transformers_forward": n / t_hf,
                "transformer_lens_forward": n / t_tl,
                "transformer_lens_run_with_cache": n / t_tl_cache,
            },
            "forward_vs_transformers": t_hf / t_ours,
            "cache_vs_transformer_lens_cache": t_tl_cache / t_ours_cache,
            "forward_vs_transformer_lens": t_tl / t_ours,
            # the ratio that carries across machines: how much of this machine's own matmul
            # rate (measured below, the faster of MKL and oneDNN) the forward reaches
            "forward_gflops": forward_flops(ours, b, p) / t_ours / 1e9,
        }
    rate = matmul_gflops()
    out["matmul_gflops"] = rate
    for b, p in ((1, 128), (8, 128)):
        entry = out[f"{b}x{p}"]
        assert isinstance(entry, dict)
        entry["forward_fraction_of_matmul_rate"] = entry["forward_gflops"] / rate
    out["generate"] = generation(hf, ours)
    out["machine"] = machine()
    print(json.dumps(out, indent=2))


def generation(hf: Any, ours: HookedTransformer) -> dict[str, object]:
    """Greedy decoding of 32 tokens after a 32-token prompt: lenscope with its KV cache (the
    default), lenscope recomputing every prefix (a hook attached turns the cache off), and
    transformers' `generate` (its own KV cache). The tokens must agree."""
    prompt = torch.randint(0, 50257, (1, 32), generator=torch.Generator().manual_seed(1))
    prompt = prompt.to(ours.device)
    new = 32

    def hf_gen() -> torch.Tensor:
        return hf.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            pad_token_id=0,
        )

    def recompute() -> torch.Tensor:
        with ours.hooks(fwd=[("blocks.0.hook_resid_pre", lambda x, h: x)]):
            return ours.generate(prompt, max_new_tokens=new)

    with torch.no_grad():
        cached = ours.generate(prompt, max_new_tokens=new)
        assert cached.tolist() == recompute().tolist() == hf_gen().tolist()
        t_cache = median_seconds(lambda: ours.generate(prompt, max_new_tokens=new), 3)
        t_recompute = median_seconds(recompute, 3)
        t_hf = median_seconds(hf_gen, 3)
    return {
        "new_tokens": new,
        "tokens_per_s": {
            "lenscope_kv_cache": new / t_cache,
            "lenscope_recompute": new / t_recompute,
            "transformers_generate": new / t_hf,
        },
        "kv_cache_speedup": t_recompute / t_cache,
        "generate_vs_transformers": t_hf / t_cache,
    }


if __name__ == "__main__":
    main()
