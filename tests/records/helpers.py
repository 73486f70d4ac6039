"""Tiny models, corpora and brute-force references for the records tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers

from lenscope import HookedTransformer, ModelConfig
from lenscope.data.corpus import Document
from lenscope.data.tokens import build_token_dataset
from lenscope.model.tokenizer import Tokenizer
from lenscope.records import HarvestConfig

VOCAB = 64
WORDS = ["<|endoftext|>", "[UNK]"] + [f"w{i}" for i in range(VOCAB - 2)]


def hf_tokenizer() -> HFTokenizer:
    tok = HFTokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def tiny_model(seed: int = 0, attn_only: bool = False, name: str = "tinyrec") -> HookedTransformer:
    cfg = ModelConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_vocab=VOCAB,
        n_ctx=32,
        d_mlp=48,
        attn_only=attn_only,
        name=name,
    )
    m = HookedTransformer(cfg, Tokenizer(hf_tokenizer()))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(m.named_parameters()):
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return m.eval()


def documents(n_docs: int = 10, words: int = 260, seed: int = 0) -> list[Document]:
    """Word documents from a random bigram chain, so that contexts carry structure."""
    rng = np.random.default_rng(seed)
    trans = rng.dirichlet(np.full(VOCAB - 2, 0.3), size=VOCAB - 2)
    docs = []
    for d in range(n_docs):
        w = int(rng.integers(VOCAB - 2))
        out = []
        for _ in range(words):
            out.append(f"w{w}")
            w = int(rng.choice(VOCAB - 2, p=trans[w]))
        docs.append(Document(f"doc{d:02d}.txt", " ".join(out)))
    return docs


def token_dataset(dest: Path, seed: int = 0) -> Path:
    build_token_dataset(
        documents(seed=seed), hf_tokenizer(), dest, val_fraction=0.0, progress=False
    )
    return dest


def write_texts(d: Path, seed: int = 0) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for doc in documents(seed=seed):
        (d / doc.name).write_text(doc.text, "utf-8")
    return d


def small_config(**kw: Any) -> HarvestConfig:
    base: dict[str, Any] = dict(
        n_tokens=1024,
        ctx=16,
        batch_rows=4,
        shard_rows=8,
        top_k=6,
        random_k=6,
        quantile_levels=(0.5, 0.9),
        per_quantile=3,
        before=4,
        after=3,
        hist_bins=8,
        sample_rate=0.5,
        calib_rows=8,
        effects_k=5,
        effect_sources=40,
    )
    base.update(kw)
    return HarvestConfig(**base)


def rows_of(stream: np.ndarray, n_tokens: int, ctx: int) -> np.ndarray:
    """The harvest's rows by the documented rule: n_rows windows spread evenly over the stream."""
    n_rows = min(n_tokens // ctx, len(stream) // ctx)
    starts = (np.arange(n_rows) * (len(stream) - ctx)) // max(n_rows - 1, 1)
    return np.stack([np.asarray(stream[s : s + ctx]) for s in starts]).astype(np.int64)


@torch.no_grad()
def reference(
    model: HookedTransformer, rows: np.ndarray, saes: Sequence[Any] = ()
) -> dict[str, Any]:
    """Every node's activation on every token, by plain cached forwards (heads: |z_h W_O,h|)."""
    toks = torch.from_numpy(rows)
    _, cache = model.run_with_cache(toks)
    out: dict[str, Any] = {}
    for layer in range(model.cfg.n_layers):
        if not model.cfg.attn_only:
            out[f"mlp.{layer}"] = cache[f"blocks.{layer}.mlp.hook_post"].reshape(
                -1, model.cfg.d_mlp
            )
        z = cache[f"blocks.{layer}.attn.hook_z"]
        w = torch.einsum("bphd,hdm->bphm", z, model.W_O[layer])
        out[f"attn.{layer}"] = w.norm(dim=-1).reshape(-1, model.cfg.n_heads)
        out[f"pattern.{layer}"] = cache[f"blocks.{layer}.attn.hook_pattern"]
    for sae in saes:
        hook = sae.cfg.hook_name
        out[f"sae.{hook}"] = sae.encode(cache[hook]).reshape(rows.size, -1)
    return {k: v.double().numpy() for k, v in out.items()}


def tables(path: Path) -> dict[str, Any]:
    """Every table and the manifest's data of a records artifact (for exact comparisons)."""
    out: dict[str, Any] = {
        t: pq.read_table(path / f"{t}.parquet") for t in ("nodes", "examples", "windows", "vocab")
    }
    out["manifest"] = json.loads((path / "manifest.json").read_text())["data"]
    return out


def assert_same_records(a: Path, b: Path) -> None:
    ta, tb = tables(a), tables(b)
    assert ta["manifest"] == tb["manifest"]
    for t in ("nodes", "examples", "windows", "vocab"):
        assert ta[t].equals(tb[t]), f"{t}.parquet differs"
