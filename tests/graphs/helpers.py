"""Tiny models with random transcoders (per layer, with a skip, cross-layer) for graph tests."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from lenscope import HookedTransformer
from lenscope.sae.clt import CrossLayerTranscoder
from lenscope.sae.dictionary import Dictionary
from lenscope.sae.transcoder import Transcoder, TranscoderConfig
from tests.attribution.factory import random_model


def random_transcoders(
    model: HookedTransformer,
    d_sae: int = 24,
    hook: str = "hook_resid_mid",
    seed: int = 0,
    activation: str = "relu",
    k: int | None = None,
) -> list[Dictionary]:
    g = torch.Generator().manual_seed(seed)
    d = model.cfg.d_model
    out = []
    for layer in range(model.cfg.n_layers):
        cfg = TranscoderConfig(
            d, d_sae, d, activation, f"blocks.{layer}.{hook}", f"blocks.{layer}.hook_mlp_out", k=k
        )
        t = Transcoder(cfg)
        with torch.no_grad():
            t.W_enc.copy_(torch.randn(d, d_sae, generator=g) * 0.4)
            t.b_enc.copy_(torch.randn(d_sae, generator=g) * 0.3 - 0.3)
            t.W_dec.copy_(torch.randn(d_sae, d, generator=g) * 0.2)
            t.b_dec.copy_(torch.randn(d, generator=g) * 0.1)
            t.threshold.fill_(0.1)
        out.append(t.as_dictionary())
    return out


class SkipTranscoder(Transcoder):
    """A transcoder with a linear skip: out = f @ W_dec + b_dec + x @ W_skip."""

    def __init__(self, cfg: TranscoderConfig, W_skip: Tensor) -> None:
        super().__init__(cfg)
        self.W_skip = nn.Parameter(W_skip)

    def decode_skip(self, f: Tensor, x: Tensor) -> Tensor:
        return self.decode(f) + x @ self.W_skip


def skip_transcoders(model: HookedTransformer, seed: int = 0) -> list[Dictionary]:
    g = torch.Generator().manual_seed(seed + 7)
    out = []
    for dic in random_transcoders(model, seed=seed):
        t = dic.source
        d = model.cfg.d_model
        s = SkipTranscoder(t.cfg, torch.randn(d, d, generator=g) * 0.05)
        s.load_state_dict(t.state_dict(), strict=False)
        out.append(s.as_dictionary())
    return out


def random_clt(model: HookedTransformer, d_sae: int = 16, seed: int = 0) -> CrossLayerTranscoder:
    g = torch.Generator().manual_seed(seed)
    d, n = model.cfg.d_model, model.cfg.n_layers
    return CrossLayerTranscoder(
        [torch.randn(d_sae, d, generator=g) * 0.4 for _ in range(n)],
        [torch.randn(d_sae, generator=g) * 0.3 - 0.3 for _ in range(n)],
        [torch.randn(d, generator=g) * 0.1 for _ in range(n)],
        [torch.randn(d_sae, n - i, d, generator=g) * 0.2 for i in range(n)],
        None,
    )


def tiny(kind: str = "gpt2", layers: int = 2) -> HookedTransformer:
    model = random_model(kind, layers=layers)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


PROMPT = [3, 17, 5, 40, 22, 9, 31, 12]


def save_clt(clt: CrossLayerTranscoder, dest: Path) -> Path:
    """circuit-tracer's cross-layer transcoder folder: W_enc_{i} / W_dec_{i} safetensors."""
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    for i in range(clt.n_layers):
        enc = {
            f"W_enc_{i}": clt.W_enc[i].contiguous(),
            f"b_enc_{i}": clt.b_enc[i].contiguous(),
            f"b_dec_{i}": clt.b_dec[i].contiguous(),
        }
        save_file(enc, str(dest / f"W_enc_{i}.safetensors"))
        save_file({f"W_dec_{i}": clt.W_dec[i].contiguous()}, str(dest / f"W_dec_{i}.safetensors"))
    return dest
