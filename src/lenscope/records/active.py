"""The nodes most active on a text, relative to their maximum over the harvest (as in TDB)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lenscope.errors import InputError
from lenscope.model import HookedTransformer
from lenscope.model.view import private_view
from lenscope.records.capture import group_activations
from lenscope.records.config import Group, dictionaries
from lenscope.records.results import ActiveNode
from lenscope.records.store import Records
from lenscope.sae.dictionary import Dictionary


def record_groups(records: Records, saes: Sequence[Any]) -> tuple[list[Group], list[Dictionary]]:
    """The records' groups that can be recomputed: latent groups only when their SAE is given."""
    by_hook = {s.hook_in: s for s in dictionaries(saes)}
    known = {d["hook"]: d["fingerprint"] for d in records.manifest.provenance.get("saes", [])}
    used: list[Dictionary] = []
    groups = []
    for d in records.manifest.data["groups"]:
        sae = -1
        if d["kind"] == "latent":
            s = by_hook.get(d["hook"])
            if s is None:
                continue
            if s.digest() != known.get(d["hook"]):
                raise InputError(
                    f"the SAE at {d['hook']} is not the one these records were harvested with"
                )
            sae = len(used)
            used.append(s)
        key = str(d.get("key", ""))
        groups.append(Group(d["name"], d["kind"], d["layer"], d["hook"], d["size"], sae, key))
    return groups, used


def most_active(
    records: Records,
    model: HookedTransformer,
    text: str | torch.Tensor,
    saes: Sequence[Any] = (),
    limit: int = 20,
) -> list[ActiveNode]:
    """Nodes ranked by (max activation on `text`) / (max activation over the harvest)."""
    if limit < 1:
        raise InputError("limit must be at least 1")
    tokens = model.to_tokens(text) if isinstance(text, str) else text
    if tokens.ndim == 1:
        tokens = tokens[None]
    groups, used = record_groups(records, saes)
    with private_view(model) as view:  # hooks on `model` are not seen, none are left on it
        acts = group_activations(view, groups, used, tokens[:1])
    maxima = records.maxima()
    strs = (
        model.to_str_tokens(tokens[0])
        if model.tokenizer is not None
        else [str(int(i)) for i in tokens[0].tolist()]
    )
    out: list[ActiveNode] = []
    for g in groups:
        x = acts[g.name][0]  # [pos, n]
        val, pos = x.max(0)
        ids = g.node_ids()
        ref = torch.tensor([maxima.get(i, float("nan")) for i in ids], device="cpu")
        ratio = val.cpu() / ref.clamp(min=1e-12)
        k = min(limit, g.size)
        for j in ratio.nan_to_num(-1.0).topk(k).indices.tolist():
            out.append(
                ActiveNode(
                    ids[j], g.kind, float(val[j]), float(ratio[j]), int(pos[j]), strs[int(pos[j])]
                )
            )
    out.sort(key=lambda a: (-a.ratio, a.node_id))
    return out[:limit]
