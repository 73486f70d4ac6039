"""The local replacement model: one prompt's forward pass made linear in its nodes.

Capturing the prompt once records every norm's scale (`*.hook_scale`), every attention pattern,
the embedding (the residual stream entering block 0: token plus positional embedding), each
transcoder's input and each MLP's true output. The replacement forward then runs the model with
those scales and patterns frozen and every MLP output replaced by

    mlp_out_l = sum_d  (a_d * s_d) @ W_dec[d -> l]  +  b_dec[l]  +  x_l @ W_skip_l  +  err_l

where `a_d` are the (frozen) feature activations of every dictionary `d` writing layer l, `s_d`
its input scale, and `err_l` the true output minus the transcoder's (an error node per
position). With nothing nudged its forward equals the model's. Everything downstream of a node
is then linear in what that node writes: the embedding, each feature's write, each error.
`run(deltas)` adds a perturbation at the embedding and at each MLP output; with
`grad=True` those perturbations are leaves whose gradients are the graph's edges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.graphs.encoder import LinearEncoder, hook_layer, linear_encoder
from lenscope.model.hooks import HookSpec
from lenscope.model.transformer import HookedTransformer
from lenscope.sae.dictionary import Dictionary, check_compatible

EMBED_HOOK = "blocks.0.hook_resid_pre"
_INPUTS = ("hook_resid_mid", "ln2.hook_normalized")


def mlp_hook(layer: int) -> str:
    return f"blocks.{layer}.hook_mlp_out"


def as_dictionaries(transcoders: Any) -> list[Dictionary]:
    """A list of `Dictionary`s from transcoders, dictionaries or a `CrossLayerTranscoder`."""
    many = getattr(transcoders, "dictionaries", None)
    if callable(many):
        out = many()
        return [Dictionary.of(d) for d in out]
    if isinstance(transcoders, Sequence) and not isinstance(transcoders, str | bytes):
        dics: list[Dictionary] = []
        for t in transcoders:
            dics.extend(
                as_dictionaries(t)
                if callable(getattr(t, "dictionaries", None))
                else [Dictionary.of(t)]
            )
        return dics
    return [Dictionary.of(transcoders)]


def check_transcoders(model: HookedTransformer, dics: Sequence[Dictionary]) -> list[Dictionary]:
    """The dictionaries in layer order, or one clear `InputError` why they cannot replace this
    model's MLPs (see the module): one per MLP layer, reading before it, writing MLP outputs."""
    cfg = model.cfg
    if cfg.attn_only:
        raise InputError(f"{cfg.name} is attention-only: it has no MLPs for transcoders to replace")
    if cfg.num_experts:
        raise InputError(f"{cfg.name} is a mixture of experts: graphs need dense MLPs")
    if cfg.output_logits_soft_cap > 0:
        raise InputError(
            f"{cfg.name} soft-caps its logits: attribution graphs need logits linear in the "
            "residual stream"
        )
    if not dics:
        raise InputError("no transcoders given: the graph needs one per MLP layer")
    by_layer: dict[int, Dictionary] = {}
    for d in dics:
        layer = hook_layer(d.hook_in)
        leaf = d.hook_in.split(".", 2)[2] if d.hook_in.count(".") >= 2 else d.hook_in
        if leaf not in _INPUTS:
            raise InputError(
                f"the transcoder reading {d.hook_in} does not read an MLP's input "
                f"(blocks.L.{' or blocks.L.'.join(_INPUTS)})"
            )
        if not 0 <= layer < cfg.n_layers:
            raise InputError(
                f"a transcoder reads layer {layer} but {cfg.name} has layers 0..{cfg.n_layers - 1}"
            )
        want = tuple(mlp_hook(j) for j in range(layer, layer + len(d.hooks_out)))
        if d.hooks_out != want:
            raise InputError(
                f"the transcoder reading {d.hook_in} writes {', '.join(d.hooks_out)}; a graph "
                f"needs it to write {mlp_hook(layer)} (and, cross-layer, each later MLP output)"
            )
        if layer in by_layer:
            raise InputError(f"two transcoders read layer {layer}: give one per MLP layer")
        check_compatible(model, d)
        linear_encoder(d)
        by_layer[layer] = d
    missing = [i for i in range(cfg.n_layers) if i not in by_layer]
    if missing:
        have = ", ".join(str(i) for i in sorted(by_layer))
        raise InputError(
            f"the transcoders cover layers {have} but {cfg.name} has MLPs at layers "
            f"0..{cfg.n_layers - 1} (missing {', '.join(map(str, missing))}): the graph needs "
            "one transcoder per MLP layer"
        )
    return [by_layer[i] for i in range(cfg.n_layers)]


@dataclass
class Source:
    """One dictionary's state on the prompt: its input, activations, write scale."""

    dic: Dictionary
    enc: LinearEncoder
    layer: int
    x: Tensor  # [n, d_in]
    acts: Tensor  # [n, d_sae]
    scale: Tensor  # [n, 1]

    @property
    def out_layers(self) -> range:
        return range(self.layer, self.layer + len(self.dic.hooks_out))

    def skip(self, x: Tensor) -> Tensor | None:
        W = self.enc.W_skip
        return None if W is None else x @ W.to(x.dtype)


@dataclass
class RunOut:
    logits: Tensor  # [n, V]
    inputs: list[Tensor]  # per dictionary [n, d_in], as read during this run
    leaves: list[Tensor] = field(default_factory=list)  # [embed, mlp_0, ...] when grad


class ReplacementModel:
    """The frozen, exactly-linear replacement of `model` on one prompt (see the module)."""

    def __init__(
        self, model: HookedTransformer, dictionaries: Sequence[Dictionary], tokens: Tensor
    ) -> None:
        self.model = model
        self.dics = check_transcoders(model, dictionaries)
        self.tokens = tokens.reshape(1, -1).to(model.device)
        self.n = int(self.tokens.shape[1])
        self.n_layers = model.cfg.n_layers
        self._capture()

    # ---- capture --------------------------------------------------------------------------
    def _capture(self) -> None:
        store: dict[str, Tensor] = {}

        def keep(x: Tensor, hook: Any) -> None:
            store[hook.name] = x.detach()

        names = {EMBED_HOOK, *(d.hook_in for d in self.dics)}
        names |= {mlp_hook(i) for i in range(self.n_layers)}
        specs: list[HookSpec] = [(n, keep) for n in names]
        specs += [(self._is_frozen, keep)]
        with torch.no_grad(), self.model.hooks(specs):
            logits = self.model(self.tokens)
        self.logits = logits[0].detach()
        self.frozen = {k: v for k, v in store.items() if self._is_frozen(k)}
        self.embed = store[EMBED_HOOK][0]
        self.mlp_out = [store[mlp_hook(i)][0] for i in range(self.n_layers)]
        self.sources: list[Source] = []
        for d in self.dics:
            x = _flat(store[d.hook_in])[0]
            with torch.no_grad():
                acts = d.latents(x)
                scale = d.write_scale(x)
            self.sources.append(Source(d, linear_encoder(d), hook_layer(d.hook_in), x, acts, scale))
        self.bias = [torch.zeros_like(self.embed) for _ in range(self.n_layers)]
        recon = [torch.zeros_like(self.embed) for _ in range(self.n_layers)]
        with torch.no_grad():
            for s in self.sources:
                for k, j in enumerate(s.out_layers):
                    recon[j] += s.dic.write(s.acts, s.x, mlp_hook(j)).to(recon[j].dtype)
                    b = s.dic.biases[k] if s.dic.biases else None
                    if b is not None:
                        self.bias[j] += (b.to(s.scale.dtype) * s.scale).to(self.bias[j].dtype)
                skip = s.skip(s.x)
                if skip is not None:
                    recon[s.layer] += skip
        self.error = [self.mlp_out[j] - recon[j] - self.bias[j] for j in range(self.n_layers)]

    @staticmethod
    def _is_frozen(name: str) -> bool:
        return name.endswith(".hook_scale") or name.endswith("attn.hook_pattern")

    # ---- the replacement forward ------------------------------------------------------------
    def run(
        self,
        deltas: Sequence[Tensor | None] | None = None,
        *,
        grad: bool = False,
        hooks: Sequence[HookSpec] = (),
    ) -> RunOut:
        """The replacement forward with `deltas[0]` added to the embedding and `deltas[1 + l]` to
        MLP output l (each [n, d_model] or None). With `grad`, zero leaves that require grad are
        added too (returned in `leaves`, in the same order). `hooks` run after the freezing
        ones (to read or detach activations)."""
        d_model = self.embed.shape[-1]
        k = 1 + self.n_layers
        given = list(deltas) if deltas is not None else [None] * k
        if len(given) != k:
            raise InputError(f"run takes {k} deltas (embedding, then each MLP output)")
        leaves = (
            [
                torch.zeros(
                    self.n, d_model, dtype=self.embed.dtype, device=self.embed.device
                ).requires_grad_()
                for _ in range(k)
            ]
            if grad
            else []
        )
        adds: list[Tensor | None] = []
        for i in range(k):
            parts = [t for t in (given[i], leaves[i] if grad else None) if t is not None]
            adds.append(sum(parts[1:], parts[0]) if parts else None)
        inputs: dict[int, Tensor] = {}
        by_hook_in: dict[str, list[int]] = {}
        for i, d in enumerate(self.dics):
            by_hook_in.setdefault(d.hook_in, []).append(i)

        def frozen(x: Tensor, hook: Any) -> Tensor:
            return self.frozen[hook.name].expand_as(x)

        def embed(x: Tensor, _hook: Any) -> Tensor:
            out = self.embed[None]
            return out if adds[0] is None else out + adds[0][None]

        def read(x: Tensor, hook: Any) -> None:
            for i in by_hook_in[hook.name]:
                inputs[i] = _flat(x)[0]

        def write(layer: int) -> Callable[[Tensor, Any], Tensor]:
            s = self.sources[layer]

            def fn(y: Tensor, _hook: Any) -> Tensor:
                out = self.mlp_out[layer]
                if s.enc.W_skip is not None:
                    now, then = s.skip(inputs[layer]), s.skip(s.x)
                    assert now is not None and then is not None
                    out = out + now - then
                a = adds[1 + layer]
                return (out if a is None else out + a)[None].reshape(y.shape)

            return fn

        specs: list[HookSpec] = [(self._is_frozen, frozen), (EMBED_HOOK, embed)]
        specs += [(h, read) for h in by_hook_in]
        specs += [(mlp_hook(j), write(j)) for j in range(self.n_layers)]
        specs += list(hooks)
        ctx = torch.enable_grad() if grad else torch.no_grad()
        with ctx, self.model.hooks(specs):
            logits = self.model(self.tokens)
        return RunOut(logits[0], [inputs[i] for i in range(len(self.dics))], leaves)

    # ---- node values ----------------------------------------------------------------------
    def pre_activations(self, inputs: Sequence[Tensor], which: Sequence[Tensor]) -> Tensor:
        """Pre-activations of features `which[d]` ([F_d, 2]: position, index) of each dictionary
        d, from inputs read in a run: one vector, dictionaries in order."""
        out = []
        for s, x, w in zip(self.sources, inputs, which, strict=True):
            W = s.enc.W.to(x.dtype)
            cols = W[:, w[:, 1]]  # [d_in, F]
            out.append((x[w[:, 0]] * cols.t()).sum(-1) + s.enc.b.to(x.dtype)[w[:, 1]])
        return torch.cat(out) if out else self.logits.new_zeros(0)

    def zero_deltas(self) -> list[Tensor]:
        """Deltas that remove every node's write (embedding, features, errors): what is left is
        the bias terms alone."""
        out = [-self.embed]
        for j in range(self.n_layers):
            out.append(-(self.mlp_out[j] - self.bias[j] - self._skip_now(j)))
        return out

    def _skip_now(self, layer: int) -> Tensor:
        s = self.sources[layer]
        skip = s.skip(s.x)
        return torch.zeros_like(self.embed) if skip is None else skip


def _flat(x: Tensor) -> Tensor:
    return x.reshape(*x.shape[:2], -1) if x.ndim > 3 else x
