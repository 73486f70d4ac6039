"""A small model with a word-level tokenizer, an SAE on it and harvested records: a whole server
that builds in seconds (the shipped models are exercised by tests/e2e)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers

from lenscope import HookedTransformer, ModelConfig
from lenscope.model.tokenizer import Tokenizer
from lenscope.sae import SAEConfig, SparseAutoencoder

VOCAB = 48
WORDS = ["<|endoftext|>", "[UNK]"] + [f"w{i}" for i in range(VOCAB - 2)]
SAE_HOOK = "blocks.0.hook_resid_post"
PROMPT = "w1 w2 w3 w4 w5 w1 w2 w3 w4"
QUESTION = {"kind": "logit_diff", "target": [" w5"], "distractor": [" w7"]}


def tokenizer(d: Path) -> Tokenizer:
    tok = HFTokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    d.mkdir(parents=True, exist_ok=True)
    tok.save(str(d / "tokenizer.json"))
    return Tokenizer.from_file(d / "tokenizer.json")


def tiny_model(d: Path, seed: int = 0) -> HookedTransformer:
    cfg = ModelConfig(
        n_layers=2, d_model=32, n_heads=4, d_vocab=VOCAB, n_ctx=24, d_mlp=32, name="tiny"
    )  # fmt: skip
    model = HookedTransformer(cfg, tokenizer(d))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.add_(torch.randn(p.shape, generator=g) * (0.3 if p.ndim == 1 else 0.2))
    return model.eval()


def tiny_sae(seed: int = 0) -> SparseAutoencoder:
    torch.manual_seed(seed)
    sae = SparseAutoencoder(SAEConfig(d_in=32, d_sae=16, k=4, hook_name=SAE_HOOK))
    with torch.no_grad():
        sae.b_enc.add_(0.5)
    return sae.eval()


def corpus(d: Path, n_docs: int = 6, words: int = 200, seed: int = 0) -> list[str]:
    """Word documents from a random bigram chain, so contexts carry some structure."""
    rng = np.random.default_rng(seed)
    trans = rng.dirichlet(np.full(VOCAB - 2, 0.3), size=VOCAB - 2)
    d.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n_docs):
        w = int(rng.integers(VOCAB - 2))
        out = []
        for _ in range(words):
            out.append(f"w{w}")
            w = int(rng.choice(VOCAB - 2, p=trans[w]))
        f = d / f"doc{i}.txt"
        f.write_text(" ".join(out), "utf-8")
        files.append(str(f))
    return files
