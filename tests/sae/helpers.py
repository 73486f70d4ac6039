"""Small deterministic fixtures for the SAE tests (also imported by subprocesses)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from lenscope import HookedTransformer, ModelConfig
from lenscope.sae.buffer import MemorySource
from lenscope.sae.config import SAEConfig, TrainConfig

if TYPE_CHECKING:
    from lenscope.sae.clt import CrossLayerTranscoder
    from lenscope.sae.transcoder import Transcoder

TEXTS = [
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n    print(i * i)\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
    "import os\nprint(os.path.join('a', 'b'))\n",
]


def tiny_model(
    d_model: int = 32, n_layers: int = 2, d_vocab: int = 64, n_ctx: int = 16, **kw: object
) -> HookedTransformer:
    cfg = ModelConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=4,
        d_vocab=d_vocab,
        n_ctx=n_ctx,
        d_mlp=2 * d_model,
        name="tiny",
        **kw,  # type: ignore[arg-type]
    )
    return HookedTransformer(cfg).eval()


def tiny_tokens(n: int = 20000, vocab: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, n)


def sparse_blocks(
    n_blocks: int = 4, rows: int = 512, d: int = 16, n_true: int = 64, seed: int = 0
) -> list[Tensor]:
    """Activations that are sparse sums of `n_true` random directions (an SAE can learn them)."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(n_true, d, generator=g, dtype=torch.float64)
    out = []
    for _ in range(n_blocks):
        mask = torch.rand(rows, n_true, generator=g, dtype=torch.float64) < 3 / n_true
        coef = torch.rand(rows, n_true, generator=g, dtype=torch.float64) * mask
        out.append(coef @ dirs + 0.01 * torch.randn(rows, d, generator=g, dtype=torch.float64))
    return out


class SlowSource(MemorySource):
    """A memory source that sleeps per block (so a subprocess can be killed mid-run)."""

    def __init__(self, blocks: list[Tensor], sleep: float) -> None:
        super().__init__(blocks)
        self.sleep = sleep

    def block(self, b: int) -> Tensor:
        time.sleep(self.sleep)
        return super().block(b)


def write_text_corpus(d: Path, n: int = 40) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (d / f"doc{i:03d}.py").write_text(TEXTS[i % len(TEXTS)] + f"x_{i} = {i * 7}\n" * 3)
    return d


def tiny_lm_dir(dest: Path, corpus: Path) -> Path:
    """A saved tiny GPT with a BPE tokenizer trained on `corpus`."""
    from lenscope.data.tokenizer import train_bpe
    from lenscope.model import Tokenizer, save_model

    texts = [p.read_text() for p in sorted(corpus.glob("*.py"))]
    tok = Tokenizer(train_bpe(texts, vocab_size=300))
    cfg = ModelConfig(
        n_layers=2, d_model=32, n_heads=4, d_vocab=tok.vocab_size, n_ctx=32, d_mlp=64, name="tinylm"
    )
    save_model(HookedTransformer(cfg, tok), dest)
    return dest


def ddp_setup() -> tuple[HookedTransformer, SAEConfig, TrainConfig]:
    """The model, tokens and configs both the 1-process and the 2-process runs use."""
    from lenscope.sae.train import sae_config_for

    m = tiny_model().to(torch.float64)
    cfg = sae_config_for(m, "blocks.0.hook_resid_post", k=4, d_sae=96)
    tc = TrainConfig(
        steps=14,
        batch_size=256,
        buffer_tokens=640,
        forward_batch=4,
        ckpt_every=7,
        dead_tokens=512,
        multi_topk=True,
    )
    return m, cfg, tc


def ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    """One rank of a data-parallel run (gloo), as torchrun would start it."""
    import os

    import torch.distributed as dist

    from lenscope.sae import train_sae
    from lenscope.sae.distributed import comm_from_env

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world)
    )
    torch.set_num_threads(1)
    m, cfg, tc = ddp_setup()
    comm = comm_from_env()
    try:
        train_sae(
            cfg,
            tc,
            model=m,
            tokens=tiny_tokens(),
            out=Path(out) / "sae",
            run_dir=Path(out) / "run",
            progress=False,
            dtype=torch.float64,
            comm=comm,
            log=lambda _s: None,
        )
    finally:
        dist.destroy_process_group()


def random_transcoder(
    layer: int,
    *,
    d: int = 32,
    d_sae: int = 40,
    reads: str = "ln2",
    activation: str = "relu",
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> Transcoder:
    """A transcoder replacing layer `layer`'s MLP with random weights, most latents active:
    reads ln2's normalised output (`reads="ln2"`) or `hook_resid_mid`, writes hook_mlp_out."""
    from lenscope.sae.transcoder import Transcoder, TranscoderConfig

    hook_in = (
        f"blocks.{layer}.ln2.hook_normalized"
        if reads == "ln2"
        else f"blocks.{layer}.hook_resid_mid"
    )
    cfg = TranscoderConfig(
        d_in=d,
        d_sae=d_sae,
        d_out=d,
        activation=activation,
        hook_in=hook_in,
        hook_out=f"blocks.{layer}.hook_mlp_out",
        k=6 if activation == "topk" else None,
    )
    t = Transcoder(cfg, dtype=dtype)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        t.W_enc.copy_(torch.randn(d, d_sae, generator=g, dtype=dtype) / d**0.5)
        t.b_enc.copy_(torch.randn(d_sae, generator=g, dtype=dtype) * 0.2 + 0.1)
        t.W_dec.copy_(torch.randn(d_sae, d, generator=g, dtype=dtype) / d_sae**0.5)
        t.b_dec.copy_(torch.randn(d, generator=g, dtype=dtype) * 0.1)
        t.threshold.copy_(torch.rand(d_sae, generator=g, dtype=dtype) * 0.1)
    return t.eval()


def random_clt(
    n_layers: int = 2, d: int = 32, d_sae: int = 24, seed: int = 0
) -> CrossLayerTranscoder:
    """A cross-layer transcoder (JumpReLU, reading each layer's hook_resid_mid), random weights."""
    from lenscope.sae.clt import CrossLayerTranscoder

    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, s: float = 1.0) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64) * s

    return CrossLayerTranscoder(
        W_enc=[r(d_sae, d, s=d**-0.5) for _ in range(n_layers)],
        b_enc=[r(d_sae, s=0.2) + 0.1 for _ in range(n_layers)],
        b_dec=[r(d, s=0.1) for _ in range(n_layers)],
        W_dec=[r(d_sae, n_layers - i, d, s=d_sae**-0.5) for i in range(n_layers)],
        threshold=[torch.rand(d_sae, generator=g, dtype=torch.float64) * 0.1] * n_layers,
    )
