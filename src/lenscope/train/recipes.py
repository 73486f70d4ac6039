"""Training recipes for lenscope's own subject models, each a plain typed description.

Recipes are deterministic from their seed: the batch at step s is a pure function of (data, seed,
s), so a run resumed from a checkpoint sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lenscope.errors import InputError


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    # model
    n_layers: int
    d_model: int
    n_heads: int
    n_ctx: int
    d_mlp: int = 0
    attn_only: bool = False
    normalization: str = "LN"
    tie_embeddings: bool = False
    sinusoidal_pos_scale: float = 0.0  # > 0: learned positions initialised as scaled sinusoids
    # data
    vocab_size: int = 4096
    corpus: tuple[str, ...] = ()  # empty = the Python standard library's source (default corpus)
    limit_bytes: int | None = None
    repeat_fraction: float = 0.0  # rows that are one chunk repeated (speeds up induction heads)
    # optimisation
    batch_size: int = 8
    steps: int = 1000
    lr: float = 1e-3
    min_lr_ratio: float = 1.0  # 1.0 = constant after warmup; < 1 = cosine decay to lr * ratio
    warmup: int = 100
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    bf16: bool = False
    seed: int = 0
    # bookkeeping
    eval_every: int = 500
    eval_batches: int = 16
    ckpt_every: int = 250
    snapshots: int = 0  # log-spaced model snapshots kept for training-dynamics plots
    probe_induction: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.n_ctx

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, **kw: Any) -> Recipe:
        known = set(self.to_dict())
        bad = sorted(k for k in kw if k not in known)
        if bad:
            raise InputError(f"unknown recipe setting(s): {', '.join(bad)}; known: {sorted(known)}")
        try:
            r = replace(self, **{k: v for k, v in kw.items() if v is not None})
        except TypeError as e:
            raise InputError(f"bad recipe setting: {e}") from None
        r.validate()
        return r

    def validate(self) -> None:
        limits = {
            "n_layers": (0, 48),
            "d_model": (8, 4096),
            "n_heads": (1, 64),
            "n_ctx": (8, 8192),
            "batch_size": (1, 4096),
            "steps": (1, 10_000_000),
            "vocab_size": (257, 65536),
        }
        for k, (lo, hi) in limits.items():
            v = getattr(self, k)
            if not lo <= v <= hi:
                raise InputError(f"recipe {self.name}: {k}={v} is outside [{lo}, {hi}]")
        if self.d_model % self.n_heads:
            raise InputError(f"recipe {self.name}: d_model must be divisible by n_heads")
        if not 0 < self.lr < 1:
            raise InputError(f"recipe {self.name}: lr {self.lr} must lie in (0, 1)")


_ATTN = dict(
    d_model=128,
    n_heads=4,
    n_ctx=128,
    attn_only=True,
    normalization="LN",
    sinusoidal_pos_scale=0.1,
    repeat_fraction=0.25,
    batch_size=8,
    lr=3e-3,
    warmup=100,
    eval_every=500,
    ckpt_every=500,
    snapshots=16,
    probe_induction=True,
)

RECIPES: dict[str, Recipe] = {
    "attn1": Recipe(
        name="attn1",
        description=(
            "1-layer attention-only transformer (the circuits paper's toy): d_model 128, 4 heads, "
            "pre-LN, learned positions initialised as sinusoids x0.1, 25% of rows one corpus chunk "
            "repeated; AdamW lr 3e-3. It can learn bigrams and skip-trigrams but no induction head."
        ),
        n_layers=1,
        steps=12000,
        **_ATTN,  # type: ignore[arg-type]
    ),
    "attn2": Recipe(
        name="attn2",
        description=(
            "2-layer attention-only transformer: d_model 128, 4 heads, pre-LN, learned positions "
            "initialised as sinusoids x0.1, 25% of rows one corpus chunk repeated to fill the row "
            "(shared/notes/induction-trials.md); AdamW lr 3e-3. Forms a previous-token head in "
            "layer 0 and induction heads in layer 1 (the phase change comes at ~10M tokens)."
        ),
        n_layers=2,
        steps=20000,
        **_ATTN,  # type: ignore[arg-type]
    ),
    "mini": Recipe(
        name="mini",
        description=(
            "GPT-2-style model with MLPs, the debugger's default subject: 4 layers, d_model 256, "
            "8 heads, d_mlp 1024, context 256, tied embeddings, GELU; AdamW lr 2e-3 with cosine "
            "decay, bf16 autocast on CPU; trained on the Python standard library's source."
        ),
        n_layers=4,
        d_model=256,
        n_heads=8,
        n_ctx=256,
        d_mlp=1024,
        tie_embeddings=True,
        batch_size=16,
        steps=3000,
        lr=2e-3,
        min_lr_ratio=0.1,
        warmup=100,
        bf16=True,
        eval_every=500,
        ckpt_every=250,
        snapshots=0,
    ),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise InputError(f"no recipe {name!r}; recipes: {', '.join(RECIPES)} (and 'baby')")
    return RECIPES[name]
