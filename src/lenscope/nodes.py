"""Node ids: the one canonical, URL-safe name of every component instance, used by every face.

A *node* is a component (an attention head, an MLP neuron, an SAE latent, the token or position
embedding), optionally pinned to a place in the prompt:

    L5.H3          attention head 3 of layer 5, all positions
    L5.H3@12       ... at query position 12
    L5.H3@12:4     ... the token pair query 12 <- key 4 (what the head moved from 4 to 12)
    L2.N517        MLP neuron 517 of layer 2 (L2.N517@7 at position 7)
    L2.E3          expert 3 of layer 2's mixture of experts: its router-weighted output
                   (L2.E3@7 at position 7); the experts of a layer sum to its MLP's output
    L6.resid_post.F1234   latent 1234 of an SAE reading blocks.6.hook_resid_post (@7 as above)
    L3.transcoder.F12     feature 12 of the transcoder that replaces layer 3's MLP (it reads
                          layer 3's MLP input, ln2's output or resid_mid, and writes its
                          hook_mlp_out); named by the layer it reads, as circuit-tracer does
    L3.clt.F12            feature 12 of a cross-layer transcoder's layer-3 encoder (reads layer
                          3's MLP input, writes hook_mlp_out of layers 3, 4, ...)
    embed, embed@3 token embedding;  pos, pos@3 learned position embedding

`NodeId.parse` accepts lower case letters and returns the canonical form; `str(node)` formats it.
`NodeKind` is the single list of node kinds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator

from lenscope.errors import InputError


class NodeKind(StrEnum):
    HEAD = "head"
    NEURON = "neuron"
    EXPERT = "expert"
    LATENT = "latent"
    EMBED = "embed"
    POS = "pos"


Granularity = Literal["component", "position", "pair"]

# Residual-stream hook points an SAE latent may read (its decoder writes back into the stream).
LATENT_SITES: dict[str, str] = {
    "resid_pre": "hook_resid_pre",
    "resid_mid": "hook_resid_mid",
    "resid_post": "hook_resid_post",
    "attn_out": "hook_attn_out",
    "mlp_out": "hook_mlp_out",
}

# Transcoder latents: the site names the kind of dictionary, the layer the one it reads. Their
# `hook_name` is the key `blocks.{l}.{site}` that the debugger and interventions file them under.
DICTIONARY_SITES: dict[str, str] = {
    "transcoder": "a transcoder replacing the layer's MLP",
    "clt": "a cross-layer transcoder's encoder at the layer",
}

_HEAD = re.compile(r"^L(\d+)\.H(\d+)(?:@(\d+)(?::(\d+))?)?$", re.IGNORECASE)
_NEURON = re.compile(r"^L(\d+)\.N(\d+)(?:@(\d+))?$", re.IGNORECASE)
_EXPERT = re.compile(r"^L(\d+)\.E(\d+)(?:@(\d+))?$", re.IGNORECASE)
_LATENT = re.compile(r"^L(\d+)\.([A-Za-z_]+)\.F(\d+)(?:@(\d+))?$", re.IGNORECASE)
_EMBED = re.compile(r"^(embed|pos)(?:@(\d+))?$", re.IGNORECASE)
_HOOK = re.compile(r"^blocks\.(\d+)\.(hook_[a-z_]+)$")
_KEY = re.compile(r"^blocks\.(\d+)\.(transcoder|clt)$")
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.*)$")
_ANY_LATENT = re.compile(r"^(?:L(\d+)\.)?([A-Za-z_.]+)\.F(\d+)$")

EXPECTED = (
    "expected L5.H3, L2.N517, L2.E3, L6.resid_post.F1234, L3.transcoder.F12, embed or pos, "
    "optionally @POS (or @Q:K for heads)"
)


@dataclass(frozen=True, order=True)
class NodeId:
    """One node: a component, optionally at a position (`position`; for heads the query position)
    and, for heads, a key position (`key_position`: the token pair)."""

    kind: NodeKind
    layer: int | None = None
    index: int | None = None
    site: str | None = None  # latents: the short hook name, e.g. "resid_post"
    position: int | None = None
    key_position: int | None = None

    # ---- text form --------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> NodeId:
        s = text.strip()
        if m := _HEAD.match(s):
            q = _opt_int(m.group(3))
            return cls(
                NodeKind.HEAD, int(m.group(1)), int(m.group(2)), None, q, _opt_int(m.group(4))
            )
        if m := _NEURON.match(s):
            return cls(
                NodeKind.NEURON, int(m.group(1)), int(m.group(2)), None, _opt_int(m.group(3))
            )
        if m := _EXPERT.match(s):
            return cls(
                NodeKind.EXPERT, int(m.group(1)), int(m.group(2)), None, _opt_int(m.group(3))
            )
        if m := _LATENT.match(s):
            site = m.group(2).lower().removeprefix("hook_")
            if site not in LATENT_SITES and site not in DICTIONARY_SITES:
                raise InputError(
                    f"node {text!r}: SAE latents live at residual-stream hooks "
                    f"({', '.join(LATENT_SITES)}) and transcoder latents at "
                    f"{' or '.join(DICTIONARY_SITES)}, not {site!r}"
                )
            return cls(
                NodeKind.LATENT, int(m.group(1)), int(m.group(3)), site, _opt_int(m.group(4))
            )
        if m := _EMBED.match(s):
            return cls(NodeKind(m.group(1).lower()), position=_opt_int(m.group(2)))
        raise InputError(f"unknown node id {text!r}: {EXPECTED}")

    def __str__(self) -> str:
        if self.kind is NodeKind.HEAD:
            base = f"L{self.layer}.H{self.index}"
        elif self.kind is NodeKind.NEURON:
            base = f"L{self.layer}.N{self.index}"
        elif self.kind is NodeKind.EXPERT:
            base = f"L{self.layer}.E{self.index}"
        elif self.kind is NodeKind.LATENT:
            base = f"L{self.layer}.{self.site}.F{self.index}"
        else:
            base = self.kind.value
        if self.position is None:
            return base
        if self.key_position is None:
            return f"{base}@{self.position}"
        return f"{base}@{self.position}:{self.key_position}"

    # ---- structure ------------------------------------------------------------------------------
    @property
    def component(self) -> NodeId:
        """The same node at every position."""
        return replace(self, position=None, key_position=None)

    @property
    def granularity(self) -> Granularity:
        if self.position is None:
            return "component"
        return "position" if self.key_position is None else "pair"

    def at(self, position: int | None, key_position: int | None = None) -> NodeId:
        return replace(self, position=position, key_position=key_position)

    @property
    def hook_name(self) -> str:
        """The hook point holding this node's activation (a latent's: the hook its SAE reads; a
        transcoder latent's: its dictionary's key `blocks.{l}.transcoder` or `blocks.{l}.clt`)."""
        if self.kind is NodeKind.HEAD:
            leaf = "hook_pattern" if self.key_position is not None else "hook_z"
            return f"blocks.{self.layer}.attn.{leaf}"
        if self.kind is NodeKind.NEURON:
            return f"blocks.{self.layer}.mlp.hook_post"
        if self.kind is NodeKind.EXPERT:  # its router weight: zero removes its output
            return f"blocks.{self.layer}.mlp.hook_expert_weights"
        if self.kind is NodeKind.LATENT:
            assert self.site is not None
            return latent_hook(self.layer or 0, self.site)
        return "hook_embed" if self.kind is NodeKind.EMBED else "hook_pos_embed"

    def check(
        self,
        *,
        n_layers: int,
        n_heads: int,
        d_mlp: int | None,
        has_pos: bool = True,
        latent_sizes: Mapping[str, int] | None = None,
        n_tokens: int | None = None,
        n_experts: int = 0,
    ) -> NodeId:
        """Raise `InputError` if this node does not exist in the model (or the prompt); else self."""
        name = str(self)
        if self.layer is not None and not 0 <= self.layer < n_layers:
            raise InputError(f"node {name}: layer {self.layer} does not exist (0..{n_layers - 1})")
        if self.kind is NodeKind.HEAD and not 0 <= (self.index or 0) < n_heads:
            raise InputError(f"node {name}: head {self.index} does not exist (0..{n_heads - 1})")
        if self.kind is NodeKind.NEURON and n_experts:
            raise InputError(
                f"node {name}: the model's MLPs are mixtures of experts; name an expert "
                f"(L{self.layer}.E0..E{n_experts - 1}) instead of a neuron"
            )
        if self.kind is NodeKind.EXPERT:
            if not n_experts:
                raise InputError(f"node {name}: the model has no mixture of experts")
            if not 0 <= (self.index or 0) < n_experts:
                raise InputError(
                    f"node {name}: expert {self.index} does not exist (0..{n_experts - 1})"
                )
        if self.kind is NodeKind.NEURON:
            if not d_mlp:
                raise InputError(f"node {name}: the model is attention-only, it has no neurons")
            if not 0 <= (self.index or 0) < d_mlp:
                raise InputError(
                    f"node {name}: neuron {self.index} does not exist (0..{d_mlp - 1})"
                )
        if self.kind is NodeKind.POS and not has_pos:
            raise InputError(f"node {name}: the model has no learned position embedding")
        if self.kind is NodeKind.LATENT:
            hook = self.hook_name
            sizes = latent_sizes or {}
            if hook not in sizes:
                have = ", ".join(sizes) or "none"
                what = "transcoder" if self.site in DICTIONARY_SITES else "SAE"
                raise InputError(f"node {name}: no {what} is spliced at {hook} (spliced: {have})")
            if not 0 <= (self.index or 0) < sizes[hook]:
                raise InputError(
                    f"node {name}: latent {self.index} does not exist (0..{sizes[hook] - 1})"
                )
        if n_tokens is not None:
            for p in (self.position, self.key_position):
                if p is not None and p >= n_tokens:
                    raise InputError(
                        f"node {name}: position {p} is beyond the prompt ({n_tokens} tokens, "
                        f"positions 0..{n_tokens - 1})"
                    )
        if (
            self.key_position is not None
            and self.position is not None
            and self.key_position > self.position
        ):
            raise InputError(
                f"node {name}: a query attends only to earlier keys; key {self.key_position} "
                f"comes after query {self.position}"
            )
        return self


def latent_hook(layer: int, site: str) -> str:
    """`blocks.{layer}.hook_{site}` for a latent site (resid_post, ...); `blocks.{layer}.{site}`
    (the dictionary's key) for transcoder sites."""
    if site in DICTIONARY_SITES:
        return f"blocks.{layer}.{site}"
    if site not in LATENT_SITES:
        raise InputError(f"SAE latents live at {', '.join(LATENT_SITES)}; not {site!r}")
    return f"blocks.{layer}.{LATENT_SITES[site]}"


def latent_site(hook_name: str) -> tuple[int, str]:
    """(layer, site) of a residual-stream hook name such as `blocks.6.hook_resid_post`, or of a
    transcoder key such as `blocks.3.transcoder`."""
    if k := _KEY.match(hook_name):
        return int(k.group(1)), k.group(2)
    m = _HOOK.match(hook_name)
    sites = {v: k for k, v in LATENT_SITES.items()}
    if not m or m.group(2) not in sites:
        raise InputError(
            f"hook {hook_name!r} is not a residual-stream hook; SAE latents become nodes only at "
            f"blocks.L.{', blocks.L.'.join(LATENT_SITES.values())}"
        )
    return int(m.group(1)), sites[m.group(2)]


def parse_node(text: str) -> NodeId:
    return NodeId.parse(text)


def head_node_id(layer: int, head: int) -> str:
    """`L5.H3`: attention head `head` of layer `layer`."""
    return str(NodeId(NodeKind.HEAD, layer, head))


def neuron_node_id(layer: int, index: int) -> str:
    """`L2.N517`: MLP neuron `index` of layer `layer`."""
    return str(NodeId(NodeKind.NEURON, layer, index))


def transcoder_key(layer: int, cross_layer: bool = False) -> str:
    """The key a transcoder's latents are filed under: `blocks.3.transcoder` (`blocks.3.clt` for a
    cross-layer transcoder's layer-3 encoder); its latents' ids are `L3.transcoder.F12`."""
    return latent_hook(layer, "clt" if cross_layer else "transcoder")


def expert_node_id(layer: int, expert: int) -> str:
    """`L2.E3`: expert `expert` of layer `layer`'s mixture of experts (its weighted output)."""
    return str(NodeId(NodeKind.EXPERT, layer, expert))


def latent_prefix(hook_name: str) -> str:
    """What every latent id of a dictionary reading `hook_name` starts with: `L6.resid_post`.

    Residual-stream hooks give `NodeId` latents (the debugger's nodes); other hooks (per-head
    `attn.hook_z`, `mlp.hook_post`, ...) get the same spelling extended to their dotted place,
    readable by `parse_latent_node_id` but not debugger nodes."""
    if k := _KEY.match(hook_name):
        return f"L{k.group(1)}.{k.group(2)}"
    m = _HOOK.match(hook_name)
    sites = {hook: site for site, hook in LATENT_SITES.items()}
    if m and m.group(2) in sites:
        return f"L{m.group(1)}.{sites[m.group(2)]}"
    if m := _BLOCK.match(hook_name):
        return f"L{m.group(1)}." + m.group(2).replace("hook_", "")
    return hook_name.replace("hook_", "")


def latent_node_id(hook_name: str, latent: int) -> str:
    """The node id of a latent: blocks.6.hook_resid_post, 1234 -> L6.resid_post.F1234."""
    return f"{latent_prefix(hook_name)}.F{latent}"


def parse_latent_node_id(node: str) -> tuple[str, int]:
    """Inverse of `latent_node_id`: L6.resid_post.F1234 -> (blocks.6.hook_resid_post, 1234)."""
    try:
        parsed: NodeId | None = NodeId.parse(node)
    except InputError:
        parsed = None
    if parsed is not None:
        if parsed.kind is not NodeKind.LATENT or parsed.position is not None:
            raise InputError(f"{node!r} is not an SAE latent id (like L6.resid_post.F1234)")
        assert parsed.index is not None
        return parsed.hook_name, parsed.index
    m = _ANY_LATENT.match(node)
    if m is None:
        raise InputError(f"{node!r} is not an SAE latent id (like L6.resid_post.F1234)")
    layer, place, idx = m.groups()
    parts = place.split(".")
    parts[-1] = "hook_" + parts[-1]
    name = ".".join(parts)
    return (f"blocks.{layer}.{name}" if layer is not None else name), int(idx)


def _canonical(text: str) -> str:
    try:
        return str(NodeId.parse(text))
    except InputError as e:  # pydantic reports ValueErrors as validation errors
        raise ValueError(str(e)) from None


NodeIdStr = Annotated[str, AfterValidator(_canonical)]
"""A node id in request models: validated and turned into its canonical spelling."""


def _opt_int(s: str | None) -> int | None:
    return None if s is None else int(s)
