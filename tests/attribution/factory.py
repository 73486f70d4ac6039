"""Small random models of every architecture family, with weights perturbed so that every
component matters, plus an independent (hooked, brute-force) evaluation of questions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lenscope import HookedTransformer, ModelConfig, load_model

VOCAB = 61

CONFIGS: dict[str, dict[str, Any]] = {
    "gpt2": dict(normalization="LN", positional="learned", d_mlp=48),
    "rotary_rms_gqa": dict(
        normalization="RMS",
        positional="rotary",
        gated_mlp=True,
        act_fn="silu",
        n_kv_heads=2,
        attn_bias=False,
        attn_out_bias=False,
        mlp_bias=False,
        d_mlp=40,
        rotary_dim=4,
    ),
    "attn_only": dict(attn_only=True, normalization="LN", positional="learned"),
    "parallel": dict(
        parallel_attn_mlp=True,
        positional="rotary",
        d_mlp=48,
        unembed_bias=True,
        tie_embeddings=True,
    ),
}


def random_model(kind: str = "gpt2", seed: int = 0, layers: int = 2) -> HookedTransformer:
    cfg = ModelConfig(
        n_layers=layers,
        d_model=32,
        n_heads=4,
        d_vocab=VOCAB,
        n_ctx=24,
        name=kind,
        **CONFIGS[kind],
    )
    model = HookedTransformer(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * (0.3 if p.ndim == 1 else 0.15))
    return model.eval()


def tokenized_model(tmp: Path, kind: str = "gpt2", layers: int = 2) -> HookedTransformer:
    """A random model with a word-level tokenizer (`w0` ... `w94`, unknown words -> [UNK])."""
    from lenscope.model.tokenizer import Tokenizer
    from tests.model.hf_fixtures import VOCAB as WORDS
    from tests.model.hf_fixtures import write_tokenizer

    tmp.mkdir(parents=True, exist_ok=True)
    write_tokenizer(tmp)
    cfg = ModelConfig(
        n_layers=layers,
        d_model=32,
        n_heads=4,
        d_vocab=WORDS,
        n_ctx=24,
        name=f"tok-{kind}",
        **CONFIGS[kind],
    )
    model = HookedTransformer(cfg, Tokenizer.from_file(tmp))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * (0.3 if p.ndim == 1 else 0.15))
    return model.eval()


def hf_model(family: str, tmp: Path) -> HookedTransformer:
    from tests.model.hf_fixtures import make_checkpoint

    d = tmp / family
    if not d.exists():
        make_checkpoint(family, d)
    return load_model(d)


def prompt(n: int = 9, seed: int = 1, vocab: int = VOCAB) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, vocab, (n,), generator=g).tolist()


HookList = Sequence[tuple[str, Callable[..., Tensor | None]]]


def logits_with(model: HookedTransformer, ids: list[int], hooks: HookList = ()) -> Tensor:
    """Last-position logits of a plain hooked run of the model itself (the independent path)."""
    with torch.no_grad():
        return model.run_with_hooks(torch.tensor([ids]), fwd_hooks=list(hooks))[0, -1]


def logit_diff(logits: Tensor, target: int, distractor: int) -> float:
    return float(logits[target] - logits[distractor])
