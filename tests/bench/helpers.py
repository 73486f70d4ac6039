"""Tiny fixtures for the bench: a random model with mini's tokenizer, a token stream of real
Python source (a few standard-library modules), tiny dictionaries."""

from __future__ import annotations

import inspect
import shlex
import textwrap
from pathlib import Path

import torch

from lenscope import HookedTransformer, ModelConfig
from lenscope.data.corpus import Document
from lenscope.data.stream import TokenStream
from lenscope.data.tokens import build_token_dataset, split_of
from lenscope.model.capture import capture
from lenscope.model.tokenizer import Tokenizer
from lenscope.sae import SparseAutoencoder
from lenscope.sae.train import sae_config_for
from lenscope.sae.transcoder import Transcoder, TranscoderConfig

MINI_TOKENIZER = Path(__file__).resolve().parents[2] / "assets" / "models" / "mini"
SOURCES = (textwrap, shlex)


def tokenizer() -> Tokenizer:
    return Tokenizer.from_file(MINI_TOKENIZER)


def tiny_model(n_ctx: int = 32, seed: int = 0) -> HookedTransformer:
    tok = tokenizer()
    cfg = ModelConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_vocab=tok.vocab_size,
        n_ctx=n_ctx,
        d_mlp=64,
        name="tinybench",
    )
    m = HookedTransformer(cfg, tok)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(m.named_parameters()):
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return m.eval()


def code_stream(dest: Path) -> TokenStream:
    """Every document in the held-out split: real Python modules, whole."""
    docs = [Document(f"{m.__name__}.py", inspect.getsource(m)) for m in SOURCES]
    docs.append(Document("notes.txt", "plain prose, not code\n"))
    # the dataset needs a train document: the first name that the split rule sends there
    filler = next(
        f"train-{i}.txt" for i in range(10**5) if split_of(f"train-{i}.txt", 0, 0.999) == "train"
    )
    docs.append(Document(filler, "x = 1\n"))
    tok = tokenizer()
    ds = build_token_dataset(
        docs, tok.hf, dest, val_fraction=0.999, progress=False, sep_id=tok.eos_id
    )
    return TokenStream(ds.train, ds.val, f"token dataset {dest}", ds)


def tiny_sae(
    model: HookedTransformer, hook: str = "blocks.0.hook_resid_post", k: int = 4, d_sae: int = 48
) -> SparseAutoencoder:
    sae = SparseAutoencoder(sae_config_for(model, hook, k=k, d_sae=d_sae), seed=1)
    toks = torch.arange(64).reshape(2, 32) * 7 % model.cfg.d_vocab
    sae.init_from_data(capture(model, toks, hook).reshape(-1, sae.d_in))
    return sae.eval()


def tiny_transcoder(model: HookedTransformer, layer: int = 1, d_sae: int = 40) -> Transcoder:
    d = model.cfg.d_model
    t = Transcoder(
        TranscoderConfig(
            d_in=d,
            d_sae=d_sae,
            d_out=d,
            activation="relu",
            hook_in=f"blocks.{layer}.ln2.hook_normalized",
            hook_out=f"blocks.{layer}.hook_mlp_out",
            model_name=model.cfg.name,
        )
    )
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        t.W_enc.copy_(torch.randn(d, d_sae, generator=g) * 0.3)
        t.b_enc.copy_(torch.randn(d_sae, generator=g) * 0.1 - 0.1)
        t.W_dec.copy_(torch.randn(d_sae, d, generator=g) * 0.1)
        t.b_dec.copy_(torch.randn(d, generator=g) * 0.01)
    return t.eval()
