"""What a harvest keeps (`HarvestConfig`) and which nodes it covers (`Group`s of nodes).

A group is one vector of nodes read at one place: the neurons of one MLP layer
(`blocks.l.mlp.hook_post`), the heads of one attention layer (the norm of what each head writes,
from `blocks.l.attn.hook_z` and W_O) or the latents of one SAE (its `encode` of the activation at
its hook point). Every per-token statistic is computed for a whole group at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from lenscope.errors import InputError
from lenscope.model import HookedTransformer
from lenscope.nodes import head_node_id, latent_node_id, latent_site, neuron_node_id
from lenscope.sae.dictionary import Dictionary, check_compatible

SCHEMA_VERSION = 1
RECORDS_KIND = "records"


Kind = Literal["neuron", "head", "latent"]


@dataclass(frozen=True)
class HarvestConfig:
    """The knobs of a harvest; every default is what `lenscope harvest` uses."""

    n_tokens: int = 1 << 19
    ctx: int = 0  # tokens per row; 0 = min(model context, 256)
    batch_rows: int = 16
    shard_rows: int = 128
    top_k: int = 20
    random_k: int = 20
    quantile_levels: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)
    per_quantile: int = 5
    before: int = 23  # context tokens kept before an example's token
    after: int = 8  # and after it
    # Positions at the start of every row that are context only: never a top example. A row's
    # first token has nothing before it (an attention sink, unlike any token in context), and
    # its activations would otherwise crowd the top examples with windows that show no context.
    context_only: int = 1
    hist_bins: int = 32
    sample_rate: float = 0.0625  # fraction of rows feeding quantile samples and histograms
    calib_rows: int = 32
    seed: int = 0
    mlp: bool = True
    heads: bool = True
    effects: bool = True  # output-token effects (costs n_nodes x d_model x d_vocab once)
    effects_k: int = 10
    effect_sources: int = 256  # most frequent corpus tokens tried as a head's source tokens

    @property
    def window(self) -> int:
        return self.before + 1 + self.after

    def row_len(self, model: HookedTransformer) -> int:
        return self.ctx if self.ctx > 0 else min(model.cfg.n_ctx, 256)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["quantile_levels"] = list(self.quantile_levels)
        return d

    def validate(self, model: HookedTransformer) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise InputError(msg)

        ctx = self.row_len(model)
        need(1 <= ctx <= model.cfg.n_ctx, f"ctx {ctx} must lie in [1, {model.cfg.n_ctx}]")
        need(self.n_tokens >= ctx, f"n_tokens {self.n_tokens} is less than one row of {ctx}")
        need(self.batch_rows >= 1, "batch_rows must be at least 1")
        need(
            self.shard_rows >= self.batch_rows and self.shard_rows % self.batch_rows == 0,
            f"shard_rows {self.shard_rows} must be a multiple of batch_rows {self.batch_rows}",
        )
        need(1 <= self.top_k <= 1000, "top_k must lie in [1, 1000]")
        need(0 <= self.random_k <= 1000, "random_k must lie in [0, 1000]")
        need(0 <= self.per_quantile <= 100, "per_quantile must lie in [0, 100]")
        levels = self.quantile_levels
        need(
            all(0.0 <= q < 1.0 for q in levels) and list(levels) == sorted(set(levels)),
            "quantile_levels must be increasing numbers in [0, 1)",
        )
        need(self.before >= 0 and self.after >= 0, "before and after must be >= 0")
        need(
            0 <= self.context_only < max(ctx, 2),
            f"context_only must lie in [0, {max(ctx - 1, 1)}] (ctx {ctx}; rows of one token "
            "have no context positions)",
        )
        need(1 <= self.hist_bins <= 4096, "hist_bins must lie in [1, 4096]")
        need(0.0 < self.sample_rate <= 1.0, "sample_rate must lie in (0, 1]")
        need(self.calib_rows >= 1, "calib_rows must be at least 1")
        need(self.effects_k >= 1 and self.effect_sources >= 1, "effects_k, effect_sources >= 1")


@dataclass(frozen=True)
class Group:
    """A vector of nodes read at one place: `name` is `mlp.L`, `attn.L` or `sae.<key>` (the
    key of a dictionary's latents: an SAE's hook, or `blocks.L.transcoder` / `blocks.L.clt`)."""

    name: str
    kind: Kind
    layer: int
    hook: str  # the hook point the group's activations come from
    size: int
    sae: int = -1  # index into the harvest's SAE list (latents)
    key: str = ""  # latents: what their node ids name (`Dictionary.node_key`); default `hook`

    def node_ids(self) -> list[str]:
        if self.kind == "neuron":
            return [neuron_node_id(self.layer, i) for i in range(self.size)]
        if self.kind == "head":
            return [head_node_id(self.layer, i) for i in range(self.size)]
        key = self.key or self.hook
        latent_site(key)  # latents with records are debugger nodes: residual hooks, transcoders
        return [latent_node_id(key, i) for i in range(self.size)]


def dictionaries(saes: Sequence[Any]) -> list[Dictionary]:
    """The harvest's SAEs and transcoders as `Dictionary`s (anything `Dictionary.of` adapts; a
    list of transcoders or a cross-layer transcoder gives one per layer)."""
    out: list[Dictionary] = []
    for s in saes:
        many = getattr(s, "dictionaries", None)
        items = many() if callable(many) else s if isinstance(s, list | tuple) else [s]
        out += [Dictionary.of(d) for d in items]
    return out


def node_groups(
    model: HookedTransformer, saes: list[Dictionary], mlp: bool = True, heads: bool = True
) -> list[Group]:
    """The groups of a harvest, in a fixed order: MLP layers, attention layers, then SAEs."""
    cfg = model.cfg
    groups: list[Group] = []
    if mlp and not cfg.attn_only:
        for layer in range(cfg.n_layers):
            groups.append(
                Group(f"mlp.{layer}", "neuron", layer, f"blocks.{layer}.mlp.hook_post", cfg.d_mlp)
            )
    if heads:
        for layer in range(cfg.n_layers):
            hook = f"blocks.{layer}.attn.hook_z"
            groups.append(Group(f"attn.{layer}", "head", layer, hook, cfg.n_heads))
    seen: set[str] = set()
    for i, sae in enumerate(saes):
        hook = sae.hook_in
        key = sae.node_key  # raises for latents that are no debugger nodes
        layer, _ = latent_site(key)
        if key in seen:
            what = "SAEs read" if sae.is_sae else "transcoders are filed as"
            raise InputError(f"two {what} {key}; harvest them separately")
        seen.add(key)
        check_compatible(model, sae)
        tail = "" if key == hook else key
        groups.append(Group(f"sae.{key}", "latent", layer, hook, sae.d_sae, i, tail))
    if not groups:
        raise InputError("nothing to harvest: the model has no MLP, heads were turned off, no SAE")
    return groups


def check_node_id(node_id: str) -> str:
    """The canonical id of a component node with a record; `InputError` otherwise."""
    from lenscope.nodes import NodeId, NodeKind

    n = NodeId.parse(node_id)
    if n.position is not None:
        raise InputError(f"{node_id}: records are per component; drop the @position")
    if n.kind in (NodeKind.EMBED, NodeKind.POS):
        raise InputError(f"{node_id}: records cover heads, neurons and SAE latents, not {n.kind}")
    return str(n)
