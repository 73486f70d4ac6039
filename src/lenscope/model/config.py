"""The one configuration type of the hooked Transformer.

A `ModelConfig` describes every architecture lenscope runs: GPT-2 style blocks, attention-only toys
and the modern family (rotary, RMSNorm, gated MLP, grouped-query attention, parallel attention+MLP,
q/k norms, post-sublayer norms, soft-capped scores and logits, local/global rotary bases).
Field names follow TransformerLens' `HookedTransformerConfig` where one exists.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from lenscope.errors import CheckpointError

Norm = Literal["LN", "RMS", "none"]
Positional = Literal["learned", "rotary", "none"]
Activation = Literal["gelu_new", "gelu", "relu", "silu", "gelu_fast", "gelu_pytorch_tanh"]
QKNorm = Literal["none", "head", "full"]

MAX_LAYERS = 256
MAX_WIDTH = 65_536
MAX_VOCAB = 1_048_576
MAX_CTX = 1_048_576


_LATER_DEFAULTS: dict[str, Any] = {
    "rotary_base_local": 0.0,
    "rotary_scale": 1.0,
    "rotary_long_rope": None,
    "attn_scores_soft_cap": 0.0,
    "output_logits_soft_cap": 0.0,
    "qk_norm": "none",
    "pre_norm": True,
    "post_norm": False,
    "num_experts": 0,
    "experts_per_token": 0,
    "experts_renormalize": True,
    "d_mlp_shared": 0,
}


@dataclass
class ModelConfig:
    n_layers: int
    d_model: int
    n_heads: int
    d_vocab: int
    n_ctx: int
    d_head: int = 0  # 0 means d_model // n_heads
    n_kv_heads: int = 0  # 0 means n_heads (no grouped-query attention)
    d_mlp: int = 0  # 0 means 4 * d_model; ignored when attn_only
    attn_only: bool = False
    act_fn: Activation = "gelu_new"
    gated_mlp: bool = False
    normalization: Norm = "LN"
    final_norm: bool = True
    eps: float = 1e-5
    positional: Positional = "learned"
    rotary_dim: int = 0  # 0 means d_head (full rotary)
    rotary_base: float = 10_000.0
    rotary_interleaved: bool = False  # GPT-J style pairs; NeoX/Llama rotate halves
    parallel_attn_mlp: bool = False
    attn_bias: bool = True  # biases on Q, K, V
    attn_out_bias: bool = True  # bias on O
    mlp_bias: bool = True
    unembed_bias: bool = False
    tie_embeddings: bool = False
    attn_scale: float = 0.0  # 0 means sqrt(d_head)
    # Sliding-window attention (Mistral, Qwen2): query i attends to key j only if
    # 0 <= i - j < sliding_window, as `transformers` does. 0 means full causal attention.
    sliding_window: int = 0
    sliding_layers: list[int] | None = None  # the layers that use the window; None means all
    rotary_base_local: float = 0.0  # the rotary base of sliding-window layers; 0 = rotary_base
    # linear rope scaling of the layers on `rotary_base` (Gemma 3's global layers): every
    # rotary frequency divided by this factor, as transformers' "linear" rope type; 1 = none
    rotary_scale: float = 1.0
    # LongRoPE (Phi-3's long-context checkpoints): {"short_factor": [...], "long_factor": [...],
    # "original_max": int, "attention_factor": float}: each frequency divided by its short
    # factor, or by its long one when a forward's last position passes original_max, and cos and
    # sin multiplied by attention_factor, as transformers' "longrope" rope type. None = plain.
    rotary_long_rope: dict[str, Any] | None = None
    # Gemma 2: scores and logits squashed to cap * tanh(x / cap); 0 means no cap.
    attn_scores_soft_cap: float = 0.0
    output_logits_soft_cap: float = 0.0
    # RMSNorm of queries and keys before rotary: per head (Gemma 3, Qwen3) or over all heads'
    # projections at once (OLMo-2), with hooks `attn.q_norm.*` / `attn.k_norm.*`.
    qk_norm: QKNorm = "none"
    pre_norm: bool = True  # ln1/ln2 normalise the sublayers' inputs (identity when False)
    post_norm: bool = (
        False  # ln1_post/ln2_post normalise the sublayers' outputs (Gemma 2/3, OLMo-2)
    )
    default_prepend_bos: bool = True
    architecture: str = "lenscope"
    name: str = "model"
    # Mixture of experts (Mixtral): each block's MLP is `num_experts` gated MLPs of width d_mlp, of
    # which a router picks `experts_per_token` per position. 0 means one dense MLP.
    num_experts: int = 0
    experts_per_token: int = 0
    # whether the chosen experts' softmax weights are renormalised to sum to 1 (Mixtral; Qwen3-MoE
    # with `norm_topk_prob`) or kept as they are
    experts_renormalize: bool = True
    # Qwen2-MoE: a shared expert of this width at every position, weighed by a sigmoid gate; it
    # is the mixture's last expert (index num_experts). 0 means none.
    d_mlp_shared: int = 0

    def __post_init__(self) -> None:
        if self.d_head == 0:
            if self.n_heads <= 0 or self.d_model % self.n_heads:
                raise CheckpointError(
                    f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}; set d_head"
                )
            self.d_head = self.d_model // self.n_heads
        if self.n_kv_heads == 0:
            self.n_kv_heads = self.n_heads
        if self.d_mlp == 0 and not self.attn_only:
            self.d_mlp = 4 * self.d_model
        if self.rotary_dim == 0 and self.positional == "rotary":
            self.rotary_dim = self.d_head
        if self.attn_scale == 0.0:
            self.attn_scale = float(self.d_head) ** 0.5
        if self.sliding_window == 0:
            self.sliding_layers = None
        elif self.sliding_layers is not None:
            self.sliding_layers = sorted({int(i) for i in self.sliding_layers})
        self.validate()

    def validate(self) -> None:
        def bound(name: str, value: int, lo: int, hi: int) -> None:
            if not lo <= value <= hi:
                raise CheckpointError(f"config {name}={value} is outside [{lo}, {hi}]")

        bound("n_layers", self.n_layers, 0, MAX_LAYERS)
        bound("d_model", self.d_model, 1, MAX_WIDTH)
        bound("n_heads", self.n_heads, 1, 1024)
        bound("d_head", self.d_head, 1, MAX_WIDTH)
        bound("d_vocab", self.d_vocab, 1, MAX_VOCAB)
        bound("n_ctx", self.n_ctx, 1, MAX_CTX)
        if not self.attn_only:
            bound("d_mlp", self.d_mlp, 1, 16 * MAX_WIDTH)
        if self.n_heads % self.n_kv_heads:
            raise CheckpointError(
                f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}"
            )
        if self.positional == "rotary" and (self.rotary_dim > self.d_head or self.rotary_dim % 2):
            raise CheckpointError(f"rotary_dim {self.rotary_dim} must be even and <= d_head")
        bound("sliding_window", self.sliding_window, 0, MAX_CTX)
        for name in ("rotary_base_local", "attn_scores_soft_cap", "output_logits_soft_cap"):
            if not getattr(self, name) >= 0.0:
                raise CheckpointError(f"config {name}={getattr(self, name)} must be >= 0")
        if not self.rotary_scale > 0.0:
            raise CheckpointError(f"config rotary_scale={self.rotary_scale} must be > 0")
        if self.qk_norm != "none" and self.normalization != "RMS":
            raise CheckpointError("qk_norm needs normalization='RMS'")
        if self.post_norm and (self.parallel_attn_mlp or self.normalization == "none"):
            raise CheckpointError("post_norm needs sequential blocks with a normalization")
        for i in self.sliding_layers or []:
            bound("sliding_layers entry", i, 0, self.n_layers - 1)
        if self.num_experts:
            bound("num_experts", self.num_experts, 1, 1024)
            bound("experts_per_token", self.experts_per_token, 1, self.num_experts)
            bound("d_mlp_shared", self.d_mlp_shared, 0, 16 * MAX_WIDTH)

    def window(self, layer: int) -> int:
        """The sliding window of `layer`'s attention, or 0 when it attends to every earlier key."""
        if self.sliding_layers is not None and layer not in self.sliding_layers:
            return 0
        return self.sliding_window

    def rotary_base_of(self, layer: int) -> float:
        """The rotary base of `layer`: `rotary_base_local` in a sliding-window layer if set."""
        if self.rotary_base_local and self.window(layer):
            return self.rotary_base_local
        return self.rotary_base

    def rotary_scale_of(self, layer: int) -> float:
        """The linear rope scaling of `layer`: `rotary_scale` where the layer turns at the
        global base (`rotary_base`), none on local layers with a base of their own."""
        if self.rotary_base_local and self.window(layer):
            return 1.0
        return self.rotary_scale

    @property
    def n_params(self) -> int:
        """Parameters excluding embeddings and unembedding (TransformerLens' convention)."""
        attn = self.d_model * self.d_head * (2 * self.n_heads + 2 * self.n_kv_heads)
        mlp = 0 if self.attn_only else self.d_model * self.d_mlp * (3 if self.gated_mlp else 2)
        if self.num_experts:
            mlp = mlp * self.num_experts + self.d_model * self.num_experts
            mlp += 3 * self.d_model * self.d_mlp_shared + (self.d_model if self.d_mlp_shared else 0)
        return self.n_layers * (attn + mlp)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # Left out when unused, so that configs (and model fingerprints) from before sliding
        # windows existed read and hash exactly as they did.
        if self.sliding_window == 0:
            del d["sliding_window"], d["sliding_layers"]
        for name, default in _LATER_DEFAULTS.items():  # likewise the fields added since
            if d[name] == default:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CheckpointError(f"unknown model config fields: {', '.join(unknown)}")
        try:
            return cls(**d)
        except TypeError as e:
            raise CheckpointError(f"bad model config: {e}") from None
