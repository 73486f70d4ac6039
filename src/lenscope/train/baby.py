"""Karpathy's baby GPT (seed 004): two tokens, context 3, trained full-batch on one bit string.

The seed's model is nanoGPT with `GPTConfig(block_size=3, vocab_size=2, n_layer=4, n_head=4,
n_embd=16, bias=False)`: 12,656 parameters, which pins the details down — linear layers without
biases, LayerNorms *with* weight and bias (9 x 32 = 288), tied embedding/unembedding, learned
positions, MLP width 4 x 16 with exact GELU. Its forward returns the last position's logits only,
so the loss is cross-entropy of the token after each full C-token window. Training: every
(window -> next token) example of the sequence in one batch, AdamW(lr 1e-3, weight_decay 0.1 on
every parameter) for `steps` steps, from `torch.manual_seed(seed)` (the seed notebook uses 1337).
Any vocabulary V >= 2 and context C >= 1 work the same way.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lenscope.errors import InputError
from lenscope.model.config import ModelConfig
from lenscope.model.layers import init_weights
from lenscope.model.transformer import HookedTransformer

SEED_SEQUENCE = "111101111011110"
MAX_STEPS = 100_000


@dataclass(frozen=True)
class BabySettings:
    vocab: int = 2
    context: int = 3
    n_layers: int = 4
    n_heads: int = 4
    d_model: int = 16
    steps: int = 50
    lr: float = 1e-3
    weight_decay: float = 0.1
    seed: int = 1337


def baby_config(
    vocab: int = 2, context: int = 3, settings: BabySettings | None = None
) -> ModelConfig:
    """The nanoGPT(bias=False) architecture as a lenscope `ModelConfig`."""
    s = settings or BabySettings(vocab=vocab, context=context)
    if s.vocab < 2 or s.context < 1:
        raise InputError(
            f"the baby GPT needs vocab >= 2 and context >= 1, got {s.vocab}, {s.context}"
        )
    return ModelConfig(
        n_layers=s.n_layers,
        d_model=s.d_model,
        n_heads=s.n_heads,
        d_vocab=s.vocab,
        n_ctx=s.context,
        d_mlp=4 * s.d_model,
        act_fn="gelu",
        normalization="LN",
        positional="learned",
        attn_bias=False,
        attn_out_bias=False,
        mlp_bias=False,
        unembed_bias=False,
        tie_embeddings=True,
        default_prepend_bos=False,
        name=f"baby-v{s.vocab}-c{s.context}",
    )


def build_baby(settings: BabySettings) -> HookedTransformer:
    """A freshly initialised baby GPT (GPT-2 init: N(0, 0.02), residual projections scaled)."""
    cfg = baby_config(settings=settings)
    torch.manual_seed(settings.seed)
    model = HookedTransformer(cfg)
    init_weights(model, cfg, seed=settings.seed)
    return model


def training_examples(
    tokens: Sequence[int], context: int, vocab: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """X [n, C], Y [n]: every length-C window of `tokens` and the token after it."""
    for pos, t in enumerate(tokens):
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < vocab:
            raise InputError(
                f"symbol {t!r} at position {pos} is not a token of the vocabulary 0..{vocab - 1}"
            )
    if len(tokens) <= context:
        raise InputError(
            f"the sequence has {len(tokens)} tokens; it needs more than the context {context}"
        )
    X = [list(tokens[i : i + context]) for i in range(len(tokens) - context)]
    Y = [tokens[i + context] for i in range(len(tokens) - context)]
    return torch.tensor(X, dtype=torch.long), torch.tensor(Y, dtype=torch.long)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run a tiny model on one thread: more only adds synchronisation (20x slower when the
    cores are shared with another job)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True, eq=False)
class BabyRun:
    """The model before and after training, and the loss at every step (before its update)."""

    settings: BabySettings
    initial: HookedTransformer
    model: HookedTransformer
    losses: list[float]
    X: torch.Tensor
    Y: torch.Tensor

    @property
    def final_loss(self) -> float:
        with torch.no_grad():
            return float(F.cross_entropy(self.model(self.X)[:, -1].float(), self.Y))


def train_baby(
    tokens: Sequence[int],
    settings: BabySettings | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> BabyRun:
    """Train the baby GPT full-batch on all (window -> next) examples of `tokens`."""
    s = settings or BabySettings()
    if not 0 <= s.steps <= MAX_STEPS:
        raise InputError(f"steps must lie in [0, {MAX_STEPS}], got {s.steps}")
    if not 0 < s.lr < 1:
        raise InputError(f"lr must lie in (0, 1), got {s.lr}")
    X, Y = training_examples(list(tokens), s.context, s.vocab)
    with one_thread():
        return _train(s, X, Y, on_step)


def _train(
    s: BabySettings, X: torch.Tensor, Y: torch.Tensor, on_step: Callable[[int, float], None] | None
) -> BabyRun:
    model = build_baby(s)
    initial = copy.deepcopy(model).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    losses = []
    model.train()
    for step in range(s.steps):
        logits = model(X)[:, -1]
        loss = F.cross_entropy(logits, Y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step + 1, losses[-1])
    model.eval()
    return BabyRun(s, initial, model, losses, X, Y)
