"""One forward and one backward pass on a private view: every activation and gradient the engine needs.

Activations are kept by `lenscope.model.capture.recorder` (the hook-recording primitive every
capture uses), not detached, so that gradients can be taken with respect to them.

The question's value is summed over the batch and differentiated once with respect to the token and
position embeddings, every head's z, every MLP's post-activation, every spliced SAE's latents and
the answer logits. Everything else (direct effects, edges, head input gradients) is derived from
these tensors without another pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lenscope.attribution.frozen import Weights
from lenscope.attribution.questions import Resolved
from lenscope.interventions.plan import Plan
from lenscope.interventions.prompts import PromptBatch
from lenscope.model.capture import recorder
from lenscope.model.hooks import HookSpec
from lenscope.model.transformer import HookedTransformer
from lenscope.sae.dictionary import Dictionary


@dataclass
class LayerActs:
    resid_pre: Tensor  # [b, p, d] input of ln1
    resid_post: Tensor  # [b, p, d] what leaves the block (after its resid_post hooks)
    ln2_in: Tensor | None  # input of ln2 (resid_mid, or resid_pre for parallel blocks)
    q: Tensor  # [b, p, H, dh] as scored (after rotary)
    k: Tensor  # [b, p, H, dh] as scored, expanded to every query head
    v: Tensor  # [b, p, H, dh] expanded to every query head
    pattern: Tensor  # [b, H, q, k]
    z: Tensor  # [b, p, H, dh]
    g_z: Tensor
    pre: Tensor | None = None  # [b, p, m]
    pre_lin: Tensor | None = None
    post: Tensor | None = None
    g_post: Tensor | None = None
    # the frozen scales of the post-sublayer norms (Gemma 2/3, OLMo-2) [b, p, 1] and of the
    # q/k norms (Gemma 3, Qwen3: [b, p, heads, 1] per head; OLMo-2: [b, p, 1] over all heads)
    s_attn_post: Tensor | None = None
    s_mlp_post: Tensor | None = None
    s_q: Tensor | None = None
    s_k: Tensor | None = None
    # mixtures of experts: each expert's router weight [b, p, E] (zero where not chosen), the
    # gradient of the value there, and the gradient at the MLP's output (before any post-norm)
    experts: Tensor | None = None
    g_experts: Tensor | None = None
    g_mlp_out: Tensor | None = None


@dataclass
class LatentActs:
    source: Dictionary
    x: Tensor  # [b, p, d] the SAE's input
    f: Tensor  # [b, p, F] latents (after latent edits)
    g_f: Tensor
    scale: Tensor  # [b, p, 1]
    rest: Tensor  # [b, p, d] what the clean latents leave out of the input (SAE bias and error)
    # transcoders, per output hook: the error there (the MLP's output minus every spliced
    # dictionary's write and bias; kept by the dictionary reading the latest layer that writes
    # it) and this dictionary's own bias write
    errors: dict[str, Tensor] = field(default_factory=dict)
    biases: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class Capture:
    model: HookedTransformer
    batch: PromptBatch
    question: Resolved
    answer: list[int]  # per prompt: the position the question reads
    keys: list[int] | None  # per prompt: key position (attention questions)
    value: Tensor  # [b]
    logits: Tensor | None  # [b, V] at the answer position (output questions)
    u: Tensor | None  # [b, V] d value / d logits
    embed: Tensor
    g_embed: Tensor
    pos_embed: Tensor | None
    g_pos: Tensor | None
    layers: list[LayerActs]
    final: Tensor | None  # [b, p, d] input of ln_final (output questions)
    positions: Tensor  # [b, p] position index of each token (rotary angles)
    w: Weights
    latents: dict[str, LatentActs] = field(default_factory=dict)
    cache: dict[str, Tensor] = field(default_factory=dict)

    @property
    def sources(self) -> dict[str, Dictionary]:
        return {h: lat.source for h, lat in self.latents.items()}

    @property
    def n_up(self) -> int:
        """Layers whose components are upstream of the question."""
        return self.question.layer if self.question.is_attention else self.model.cfg.n_layers

    def valid(self) -> Tensor:
        """[b, p] True at real (unpadded) positions."""
        if self.batch.mask is None:
            return torch.ones_like(self.batch.tokens, dtype=torch.bool)
        return self.batch.mask.bool()


def layer_hooks(model: HookedTransformer, layer: int) -> dict[str, str]:
    cfg = model.cfg
    a = f"blocks.{layer}.attn."
    rot = cfg.positional == "rotary"
    names = {
        "resid_pre": f"blocks.{layer}.hook_resid_pre",
        "resid_post": f"blocks.{layer}.hook_resid_post",
        "q": a + ("hook_rot_q" if rot else "hook_q"),
        "k": a + ("hook_rot_k" if rot else "hook_k"),
        "v": a + "hook_v",
        "pattern": a + "hook_pattern",
        "z": a + "hook_z",
    }
    if cfg.qk_norm != "none":
        names |= {"s_q": a + "q_norm.hook_scale", "s_k": a + "k_norm.hook_scale"}
    if cfg.post_norm:
        names["s_attn_post"] = f"blocks.{layer}.ln1_post.hook_scale"
    if not cfg.attn_only:
        m = f"blocks.{layer}.mlp."
        if cfg.num_experts:
            names |= {"experts": m + "hook_expert_weights"}
            names["mlp_out"] = f"blocks.{layer}.hook_mlp_out"
        else:
            names |= {"pre": m + "hook_pre", "post": m + "hook_post"}
        if cfg.gated_mlp and not cfg.num_experts:
            names["pre_lin"] = m + "hook_pre_linear"
        if not cfg.parallel_attn_mlp:
            names["mid"] = f"blocks.{layer}.hook_resid_mid"
        if cfg.post_norm:
            names["s_mlp_post"] = f"blocks.{layer}.ln2_post.hook_scale"
    return names


def _mlp_grad_names(model: HookedTransformer, per: dict[str, str]) -> list[str]:
    """The MLP activations the value is differentiated at: a dense MLP's post-activation, or a
    mixture's expert weights and output."""
    if model.cfg.attn_only:
        return []
    if model.cfg.num_experts:
        return [per["experts"], per["mlp_out"]]
    return [per["post"]]


def _expand(t: Tensor, n_heads: int) -> Tensor:
    g = n_heads // t.shape[2]
    return t if g == 1 else t.repeat_interleave(g, dim=2)


def positions_of(batch: PromptBatch) -> Tensor:
    if batch.mask is None:
        b, p = batch.tokens.shape
        return torch.arange(p, device=batch.tokens.device).expand(b, p)
    return (batch.mask.long().cumsum(-1) - 1).clamp(min=0)


def forward_value(
    view: HookedTransformer,
    batch: PromptBatch,
    question: Resolved,
    answer: list[int],
    keys: list[int] | None,
    hooks: Sequence[HookSpec],
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """(value [b], answer logits [b, V] or None, final residual or None) under `hooks`."""
    rows = torch.arange(batch.size, device=batch.tokens.device)
    ans = torch.tensor(answer, device=batch.tokens.device)
    if question.is_attention:
        assert keys is not None
        scores: dict[str, Tensor] = {}
        name = f"blocks.{question.layer}.attn.hook_attn_scores"
        with view.hooks(fwd=[*hooks, *recorder(scores, [name])]):
            view(batch.tokens, attention_mask=batch.mask, stop_at_layer=question.layer + 1)
        kk = torch.tensor(keys, device=ans.device)
        return scores[name][rows, question.head, ans, kk], None, None
    with view.hooks(fwd=hooks):
        x = view(batch.tokens, attention_mask=batch.mask, stop_at_layer=view.cfg.n_layers)
        logits = view.unembed_resid(view.ln_final(x)[rows, ans])
    return question.value(logits), logits, x


def _transcoder_errors(lat: Mapping[str, LatentActs], ys: Mapping[str, Tensor]) -> None:
    """Each transcoder's bias writes and, per output hook, the error: the output (as the model
    computed it, after the splices) minus every spliced dictionary's write and bias there."""
    writers: dict[str, list[LatentActs]] = {}
    for a in lat.values():
        src = a.source
        if src.is_sae:
            continue
        for i, h in enumerate(src.hooks_out):
            writers.setdefault(h, []).append(a)
            b = src.biases[i] if src.biases else None
            if b is not None:
                a.biases[h] = b.to(a.f.dtype) * a.scale
    for h, ws in writers.items():
        if h not in ys:
            continue
        err = ys[h].reshape(*ys[h].shape[:2], -1).clone()
        for a in ws:
            err = err - (a.f * a.scale) @ a.source.decoder(h).to(a.f.dtype)
            if h in a.biases:
                err = err - a.biases[h]
        owner = max(ws, key=lambda a: int(a.source.hook_in.split(".")[1]))
        owner.errors[h] = err


def capture(
    view: HookedTransformer,
    batch: PromptBatch,
    question: Resolved,
    plan: Plan,
    latents: Mapping[str, Dictionary],
) -> Capture:
    cfg = view.cfg
    answer = question.answer_positions(batch.lengths)
    keys = question.key_positions(batch.lengths) if question.is_attention else None
    n_run = question.layer + 1 if question.is_attention else cfg.n_layers
    store: dict[str, Tensor] = {}

    def leaf(x: Tensor, hook: Any) -> Tensor:
        y = x.detach().requires_grad_(True)
        store[hook.name] = y
        return y

    sink: dict[str, Tensor] = {}
    hooks = plan.hooks(latents, sink)
    hooks.append(("hook_embed", leaf))
    if view.W_pos is not None:
        hooks.append(("hook_pos_embed", leaf))
    names = [layer_hooks(view, lay) for lay in range(n_run)]
    outs = sorted({h for src in latents.values() if not src.is_sae for h in src.hooks_out})
    hooks += recorder(store, [n for per in names for n in per.values()] + outs)
    with torch.enable_grad():
        value, logits, final = forward_value(view, batch, question, answer, keys, hooks)
        wanted: list[Tensor] = [store["hook_embed"]]
        if view.W_pos is not None:
            wanted.append(store["hook_pos_embed"])
        wanted += [store[per["z"]] for per in names]
        wanted += [store[n] for per in names for n in _mlp_grad_names(view, per)]
        lat_hooks = [h for h, src in latents.items() if src.hook_in in sink]
        wanted += [sink[latents[h].hook_in] for h in lat_hooks]
        if logits is not None:
            wanted.append(logits)
        grads = torch.autograd.grad(value.sum(), wanted, allow_unused=True)
    g = [gr if gr is not None else torch.zeros_like(t) for gr, t in zip(grads, wanted, strict=True)]
    g.reverse()
    dt = torch.float64 if value.dtype == torch.float64 else torch.float32

    def d(t: Tensor) -> Tensor:
        return t.detach().to(dt)

    embed, g_embed = d(store["hook_embed"]), d(g.pop())
    pos_embed = g_pos = None
    if view.W_pos is not None:
        pos_embed, g_pos = d(store["hook_pos_embed"]), d(g.pop())
    g_z = [d(g.pop()) for _ in names]
    g_mlp = [[d(g.pop()) for _ in _mlp_grad_names(view, per)] for per in names]
    layers = []
    for lay, per in enumerate(names):
        acts = LayerActs(
            resid_pre=d(store[per["resid_pre"]]),
            resid_post=store[per["resid_post"]].detach(),
            ln2_in=d(store[per.get("mid", per["resid_pre"])]) if not cfg.attn_only else None,
            q=d(store[per["q"]]),
            k=_expand(d(store[per["k"]]), cfg.n_heads),
            v=_expand(d(store[per["v"]]), cfg.n_heads),
            pattern=d(store[per["pattern"]]),
            z=d(store[per["z"]]),
            g_z=g_z[lay],
        )
        for name in ("s_attn_post", "s_mlp_post", "s_q", "s_k"):
            if name in per:
                setattr(acts, name, d(store[per[name]]))
        if cfg.num_experts and not cfg.attn_only:
            acts.experts = d(store[per["experts"]])
            acts.g_experts, acts.g_mlp_out = g_mlp[lay]
        elif not cfg.attn_only:
            acts.pre = d(store[per["pre"]])
            acts.pre_lin = d(store[per["pre_lin"]]) if "pre_lin" in per else None
            acts.post = d(store[per["post"]])
            (acts.g_post,) = g_mlp[lay]
        layers.append(acts)
    lat: dict[str, LatentActs] = {}
    for h in lat_hooks:
        src = latents[h]
        x = d(sink[src.hook_in + ":input"])
        scale = d(src.write_scale(x))
        f = d(sink[src.hook_in])
        if src.is_sae:
            rest = x - (d(src.latents(x)) * scale) @ src.W_dec.to(dt)
        else:
            rest = torch.zeros_like(x[..., :0])
        lat[h] = LatentActs(src, x, f, d(g.pop()), scale, rest)
    _transcoder_errors(lat, {h: d(store[h]) for h in outs if h in store})
    u = d(g.pop()) if logits is not None else None
    return Capture(
        model=view,
        batch=batch,
        question=question,
        answer=answer,
        keys=keys,
        value=value.detach().to(dt),
        logits=None if logits is None else d(logits),
        u=u,
        embed=embed,
        g_embed=g_embed,
        pos_embed=pos_embed,
        g_pos=g_pos,
        layers=layers,
        final=None if final is None else d(final),
        positions=positions_of(batch),
        w=Weights(view, dt),
        latents=lat,
    )
