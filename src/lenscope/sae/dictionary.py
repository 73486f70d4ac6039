"""`Dictionary`: one adapter for every learned sparse basis at a model's hooks.

An SAE reads and writes one hook; a transcoder reads an MLP's input (`blocks.l.ln2.hook_normalized`)
and writes its output (`blocks.l.hook_mlp_out`); a cross-layer transcoder reads one hook and writes
several. A `Dictionary` is what every instrument (the debugger, interventions, records, the bench)
needs of any of them:

    hook_in, hooks_out      the hook it reads and the hooks it writes
    encode(x)               latents [..., d_sae] of activations [..., d_in] read at hook_in
    decoder(hook), W_dec    decoder rows [d_sae, d_out] writing into one output hook
    write_scale(x)          input scaling: latent j writes f_j * scale(x) * decoder[j]
                            (scale is 1, or each token's std for SAEs that normalise their input)
    decode(f, x, hook)      the reconstruction at an output hook from latents f (input x)

`Dictionary.of` adapts lenscope's `SparseAutoencoder`, SAELens' `SAE`, anything with an
`as_dictionary()` (lenscope's `Transcoder`), or any object with `encode(x)` and `W_dec` (then pass
`hook_name`). `check_compatible` is the one check that a
dictionary fits a model. `splice` is the one splice: forward hooks for one request (pass them to
`run_with_hooks` or `model.hooks`), nothing is attached to the model itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.model import HookedTransformer, fingerprint
from lenscope.model.capture import check_hook, hook_width, width_source
from lenscope.model.hooks import HookSpec
from lenscope.nodes import latent_site, transcoder_key

Latents = Callable[[Tensor], Tensor]  # [..., d_in] -> [..., d_sae]
TopK = Callable[[Tensor], tuple[Tensor, Tensor] | None]


@runtime_checkable
class _Encodes(Protocol):
    """What an outside object needs to be adapted: an encoder and a decoder matrix."""

    W_dec: Tensor

    def encode(self, x: Tensor) -> Tensor: ...


@dataclass(frozen=True, eq=False)
class Dictionary:
    """A learned sparse basis: reads `hook_in`, writes each of `hooks_out` (see the module)."""

    hook_in: str
    hooks_out: tuple[str, ...]
    encode: Latents  # differentiable; [..., d_in] -> [..., d_sae]
    decoders: tuple[Tensor, ...]  # per output hook: [d_sae, d_out]
    biases: tuple[Tensor | None, ...] = ()  # per output hook: what decoding adds (b_dec)
    scale: Callable[[Tensor], Tensor] | None = None  # [..., d_in] -> [..., 1]
    reconstruct: Callable[[Tensor, Tensor], Tensor] | None = None  # (f, x): not linear in f
    encode_topk: TopK | None = None  # (ids [N, k], values [N, k]) for exactly-k dictionaries
    model_fingerprint: str | None = None
    model_name: str = ""
    source: Any = None  # the adapted object

    def __post_init__(self) -> None:
        if not self.hooks_out or len(self.decoders) != len(self.hooks_out):
            raise InputError("a dictionary needs one decoder [d_sae, d_out] per hook it writes")
        if self.biases and len(self.biases) != len(self.hooks_out):
            raise InputError("a dictionary needs one bias (or None) per hook it writes")
        for h, w in zip(self.hooks_out, self.decoders, strict=True):
            if w.ndim != 2 or w.shape[0] != self.decoders[0].shape[0]:
                raise InputError(f"the dictionary's decoder into {h} must be [d_sae, d_out]")

    # ---- shape ----------------------------------------------------------------------------------
    @property
    def d_sae(self) -> int:
        return int(self.decoders[0].shape[0])

    def d_out(self, hook: str) -> int:
        return int(self.decoder(hook).shape[1])

    @property
    def is_sae(self) -> bool:
        """Reads and writes the same single hook."""
        return self.hooks_out == (self.hook_in,)

    @property
    def node_key(self) -> str:
        """What its latents' node ids are filed under (`NodeId.hook_name`): an SAE's hook; for a
        transcoder reading layer l's MLP input (`blocks.l.ln2.hook_normalized` or
        `blocks.l.hook_resid_mid`) and writing `blocks.l.hook_mlp_out`, `blocks.l.transcoder`
        (ids `Ll.transcoder.F12`); for a cross-layer transcoder's layer-l encoder, `blocks.l.clt`.
        `InputError` for a dictionary whose latents are no debugger nodes."""
        if self.is_sae:
            latent_site(self.hook_in)  # raises for hooks that are not in the residual stream
            return self.hook_in
        layer = _transcoder_layer(self.hook_in)
        # a cross-layer transcoder (its source splits into per-layer `dictionaries()`)
        cross = len(self.hooks_out) > 1 or callable(getattr(self.source, "dictionaries", None))
        outs = [_mlp_out_layer(h) for h in self.hooks_out]
        ok = outs == list(range(layer, layer + len(outs))) if cross else outs == [layer]
        if layer < 0 or not ok:
            raise InputError(
                f"the dictionary reading {self.hook_in} and writing {', '.join(self.hooks_out)} "
                "is neither an SAE at a residual-stream hook nor a transcoder that reads layer "
                "l's MLP input (blocks.l.ln2.hook_normalized or blocks.l.hook_resid_mid) and "
                "writes blocks.l.hook_mlp_out (and later layers' for a cross-layer transcoder)"
            )
        return transcoder_key(layer, cross_layer=cross)

    def decoder(self, hook: str) -> Tensor:
        """The decoder rows [d_sae, d_out] writing into `hook`."""
        try:
            return self.decoders[self.hooks_out.index(hook)]
        except ValueError:
            raise InputError(
                f"the dictionary reading {self.hook_in} writes {', '.join(self.hooks_out)}, "
                f"not {hook}"
            ) from None

    @property
    def W_dec(self) -> Tensor:
        """The decoder [d_sae, d_out] of a dictionary writing one hook."""
        if len(self.decoders) != 1:
            raise InputError(
                f"the dictionary reading {self.hook_in} writes {len(self.decoders)} hooks; "
                "use decoder(hook)"
            )
        return self.decoders[0]

    # ---- maths ----------------------------------------------------------------------------------
    def write_scale(self, x: Tensor) -> Tensor:
        """[..., 1]: what each token's latents are multiplied by when written (input scaling)."""
        return torch.ones_like(x[..., :1]) if self.scale is None else self.scale(x)

    def latents(self, x: Tensor) -> Tensor:
        """Latents of `x` without gradient, in `x`'s dtype."""
        with torch.no_grad():
            return self.encode(x.detach()).to(x.dtype)

    def write(self, f: Tensor, x: Tensor, hook: str) -> Tensor:
        """What latents `f` write into `hook` (no bias): (f * scale(x)) @ decoder."""
        return (f * self.write_scale(x.detach())) @ self.decoder(hook).to(f.dtype)

    def decode(self, f: Tensor, x: Tensor, hook: str | None = None) -> Tensor:
        """The reconstruction at `hook` (default: the first output) of latents `f`, input `x`."""
        hook = hook or self.hooks_out[0]
        if self.reconstruct is not None and hook == self.hooks_out[0]:
            return self.reconstruct(f, x)
        out = self.write(f, x, hook)
        b = self.biases[self.hooks_out.index(hook)] if self.biases else None
        return out if b is None else out + b.to(out.dtype) * self.write_scale(x.detach())

    def digest(self) -> str:
        """A short hash of the hook and weights (names artifacts built from this dictionary)."""
        fp = getattr(self.source, "fingerprint", None)
        if isinstance(fp, str):
            return fp
        if callable(fp):
            return str(fp())
        h = hashlib.sha256(self.hook_in.encode())
        src = self.source
        tensors = (
            [p for _, p in sorted(src.named_parameters())]
            if isinstance(src, torch.nn.Module)
            else list(self.decoders)
        )
        for p in tensors:
            h.update(p.detach().to("cpu", torch.float16).numpy().tobytes()[:65536])
        return h.hexdigest()[:16]

    # ---- adapters -------------------------------------------------------------------------------
    @classmethod
    def of(cls, obj: Any, hook_name: str | None = None) -> Dictionary:
        """Adapt lenscope's `SparseAutoencoder`, SAELens' `SAE`, or any object with `encode(x)`
        and `W_dec` [d_sae, d_model] (then `hook_name` is required); a `Dictionary` is itself."""
        if isinstance(obj, Dictionary):
            return obj
        as_dictionary = getattr(obj, "as_dictionary", None)  # e.g. a Transcoder
        if callable(as_dictionary) and isinstance(dic := as_dictionary(), Dictionary):
            return dic
        cfg = getattr(obj, "cfg", None)
        hook = hook_name or getattr(obj, "hook_name", None)
        hook = hook or getattr(cfg, "hook_name", None) or _saelens_hook(cfg)
        if not isinstance(hook, str) or not hook:
            raise InputError("the SAE does not say which hook it reads; pass hook_name")
        if not isinstance(obj, _Encodes):
            raise InputError("an SAE needs encode(x) and W_dec [d_sae, d_model] to become nodes")
        W_dec = obj.W_dec.detach()
        if W_dec.ndim != 2:
            raise InputError(f"SAE at {hook}: W_dec must be [d_sae, d_model]")
        scale = None
        if getattr(cfg, "normalize", False) and hasattr(obj, "normalize"):

            def scale(x: Tensor) -> Tensor:
                stats = obj.normalize(x.to(W_dec.dtype))[1]
                return stats.std.to(x.dtype)  # type: ignore[no-any-return]

        b = getattr(obj, "b_dec", None)
        want = getattr(cfg, "model_fingerprint", None)
        return cls(
            hook_in=hook,
            hooks_out=(hook,),
            encode=obj.encode,
            decoders=(W_dec,),
            biases=(None if b is None else b.detach(),),
            scale=scale,
            reconstruct=_reconstruct(obj),
            encode_topk=getattr(obj, "encode_topk", None),
            model_fingerprint=want if isinstance(want, str) and want else None,
            model_name=str(getattr(cfg, "model_name", "") or ""),
            source=obj,
        )


_TC_IN = re.compile(r"^blocks\.(\d+)\.(?:ln2\.hook_normalized|hook_resid_mid)$")
_MLP_OUT = re.compile(r"^blocks\.(\d+)\.hook_mlp_out$")


def _transcoder_layer(hook: str) -> int:
    m = _TC_IN.match(hook)
    return int(m.group(1)) if m else -1


def _mlp_out_layer(hook: str) -> int:
    m = _MLP_OUT.match(hook)
    return int(m.group(1)) if m else -1


def _saelens_hook(cfg: Any) -> str | None:
    meta = getattr(cfg, "metadata", None)
    hook = getattr(meta, "hook_name", None) if meta is not None else None
    return hook if isinstance(hook, str) and hook else None


def _reconstruct(obj: Any) -> Callable[[Tensor, Tensor], Tensor] | None:
    """The object's own decoding (lenscope's SAEs: denormalised, exactly as in evaluation)."""
    from lenscope.sae.model import SparseAutoencoder

    if isinstance(obj, SparseAutoencoder):
        sae = obj

        def rec(f: Tensor, x: Tensor) -> Tensor:
            xs = x.to(sae.W_enc.dtype)
            return sae.decode(f.to(xs.dtype), sae.normalize(xs)[1]).to(x.dtype)

        return rec
    decode = getattr(obj, "decode", None)
    if callable(decode) and not getattr(getattr(obj, "cfg", None), "normalize", False):

        def dec(f: Tensor, x: Tensor) -> Tensor:
            return decode(f).to(x.dtype)  # type: ignore[no-any-return]

        return dec
    return None


def check_compatible(model: HookedTransformer, dic: Dictionary, strict: bool = True) -> None:
    """`InputError` unless `dic` can read and write `model`'s activations at its hooks;
    `strict`: also unless it was trained on this very model (when it records a fingerprint)."""
    for i, hook in enumerate((dic.hook_in, *dic.hooks_out)):
        check_hook(model, hook)
        width = hook_width(model.cfg, hook)
        have = int(dic.decoder(hook).shape[1]) if i else _d_in(dic)
        if have is not None and have != width:
            what = "reads d_in" if i == 0 else f"writes d_out into {hook} as"
            raise InputError(
                f"the SAE {what} = {have} but {model.cfg.name}'s {hook} is {width}-dimensional "
                f"({width_source(model.cfg, hook)}); use an SAE trained on this model and hook"
            )
    want = dic.model_fingerprint
    if strict and want and want != fingerprint(model):
        raise InputError(
            f"the SAE was trained on a model with fingerprint {want} ({dic.model_name}), "
            f"not on this {model.cfg.name} ({fingerprint(model)}); pass strict=False (--force) "
            "to use it anyway"
        )


def _d_in(dic: Dictionary) -> int | None:
    """The width the dictionary reads: its config's d_in, else an SAE's decoder width."""
    d = getattr(getattr(dic.source, "cfg", None), "d_in", None)
    if isinstance(d, int):
        return d
    return int(dic.decoders[0].shape[1]) if dic.is_sae else None


def splice(
    dictionary: Any,
    *,
    keep_error: bool = False,
    edit: Callable[[Tensor], Tensor] | None = None,
    sink: MutableMapping[str, Tensor] | None = None,
) -> list[HookSpec]:
    """Forward hooks that splice `dic` into one forward pass (nothing is left on the model).

    At `hook_in` the latents f = encode(x) are taken (no gradient flows into the encoder; f is a
    leaf that requires grad when grad is enabled) and `edit` maps them to f'. At each output hook
    the activation y becomes, with `keep_error`, y + write(f') - write(f): the reconstruction
    plus the dictionary's error, exactly y when nothing is edited, so gradients reach each
    latent as scale * W_dec[j] . grad and upstream gradients stay the model's own; without it,
    decode(f'). `sink` receives f' at `sink[hook_in]` and the input at `sink[hook_in + ":input"]`.
    Flattened per-head hooks (hook_z) are read and written as one vector per token.
    `dictionary`: a `Dictionary` or anything `Dictionary.of` adapts."""
    dic = Dictionary.of(dictionary)
    state: dict[str, Tensor] = {}

    def read(x: Tensor) -> None:
        xin = x.detach().reshape(*x.shape[:2], -1) if x.ndim > 3 else x.detach()
        f = dic.latents(xin).requires_grad_(torch.is_grad_enabled())
        state["x"], state["f"], state["f2"] = xin, f, (edit(f) if edit is not None else f)
        if sink is not None:
            sink[dic.hook_in] = state["f2"]
            sink[dic.hook_in + ":input"] = xin

    def write(y: Tensor, hook: str) -> Tensor:
        x, f, f2 = state["x"], state["f"], state["f2"]
        if keep_error:
            if edit is None and sink is None:
                return y
            flat = y.reshape(*y.shape[:2], -1)
            return (flat + dic.write(f2 - f.detach(), x, hook).to(y.dtype)).reshape(y.shape)
        if edit is None and dic.reconstruct is not None and hook == dic.hooks_out[0]:
            out = _full_reconstruction(dic, x)
        else:
            out = dic.decode(f2, x, hook)
        return out.to(y.dtype).reshape(y.shape)

    def on_in(x: Tensor, _hook: Any) -> Tensor | None:
        read(x)
        return write(x, dic.hook_in) if dic.hook_in in dic.hooks_out else None

    def on_out(name: str) -> Callable[[Tensor, Any], Tensor]:
        def fn(y: Tensor, _hook: Any) -> Tensor:
            return write(y, name)

        return fn

    specs: list[HookSpec] = [(dic.hook_in, on_in)]
    specs += [(h, on_out(h)) for h in dic.hooks_out if h != dic.hook_in]
    return specs


def _full_reconstruction(dic: Dictionary, x: Tensor) -> Tensor:
    """lenscope SAEs reconstruct through their sparse path, as `evaluate_sae` measures them."""
    from lenscope.sae.model import SparseAutoencoder

    sae = dic.source
    if isinstance(sae, SparseAutoencoder):
        flat = x.reshape(-1, x.shape[-1])
        return sae.reconstruct(flat).reshape(*x.shape[:-1], -1)
    return dic.decode(dic.latents(x), x)
