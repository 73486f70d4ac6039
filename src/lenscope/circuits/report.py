"""Everything the weights and a few probes say about a model's heads, as one result object.

`circuit_report(model)` is what `lenscope circuits MODEL` prints: induction heads and the
previous-token heads that feed them (behaviour + K-composition), composition scores, copying
scores, positional preferences, bigram / OV / QK top-token tables, skip-trigrams for one-layer
models, the attention patterns on a repeated sequence and, given a prompt, the path expansion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lenscope.circuits.composition import (
    MODES,
    CompositionScores,
    CopyingScores,
    composition_scores,
    copying_scores,
)
from lenscope.circuits.folding import circuit_weights
from lenscope.circuits.heads import InductionCircuit, find_induction_circuit, head_scores
from lenscope.circuits.paths import PathExpansion, path_expansion
from lenscope.circuits.positional import OffsetPreference, all_offset_preferences
from lenscope.circuits.skiptrigrams import SkipTrigram, skip_trigrams
from lenscope.circuits.tables import Kind, TokenTable, token_labeler, token_table
from lenscope.data.repeated import probe_pool, repeated_tokens
from lenscope.jsonable import JsonResult
from lenscope.model.transformer import HookedTransformer
from lenscope.model.view import isolated

KINDS: tuple[Kind, ...] = ("ov", "qk")


@dataclass(frozen=True, eq=False)
class CircuitReport(JsonResult):
    model: str
    summary: str
    layernorm: str
    notes: list[str]
    induction: InductionCircuit
    composition: list[CompositionScores]
    copying: CopyingScores
    offsets: list[OffsetPreference]
    tables: list[TokenTable]
    skip_trigrams: list[SkipTrigram]
    patterns: torch.Tensor  # [L, H, q, k] on one [BOS, r, r] sequence
    pattern_seq_len: int
    paths: PathExpansion | None = None
    path_top: list[tuple[str, float]] = field(default_factory=list)
    path_token_id: int | None = None  # the last position's top logit, which path_top expands
    path_token: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "summary": self.summary,
            "layernorm": self.layernorm,
            "notes": self.notes,
            "induction": self.induction.to_json(),
            "composition": {c.mode: c.to_json() for c in self.composition},
            "copying": self.copying.to_json(),
            "offsets": [o.to_json() for o in self.offsets],
            "tables": [t.to_json() for t in self.tables],
            "skip_trigrams": [t.to_json() for t in self.skip_trigrams],
            "paths": None if self.paths is None else self.paths.to_json(),
            "path_top": [{"path": n, "logit": v} for n, v in self.path_top],
            "path_token_id": self.path_token_id,
            "path_token": self.path_token,
        }


@isolated
def circuit_report(
    model: HookedTransformer,
    tokens: Sequence[int] | None = None,
    k: int = 5,
    n_rows: int = 6,
    prompt: torch.Tensor | None = None,
    pattern_seq_len: int = 20,
) -> CircuitReport:
    """Build the report; `tokens` picks the rows of the OV/QK/bigram tables (default: strongest)."""
    cfg = model.cfg
    label = token_labeler(model)
    cw = circuit_weights(model)
    notes = []
    if not cfg.attn_only:
        notes.append("the model has MLPs: weight circuits read attention and embeddings only")
    if cfg.positional == "rotary":
        notes.append("rotary positions: QK circuits show the content term at offset 0")
    scores = head_scores(model)
    induction = find_induction_circuit(model, scores, cw)
    comps = [composition_scores(cw, m) for m in MODES] if cfg.n_layers >= 2 else []
    copying = copying_scores(cw)
    has_pos = cw.W_pos is not None and cw.W_pos.shape[0] >= 2
    offsets = all_offset_preferences(cw, pool=probe_pool(model)) if has_pos else []
    tables = [token_table(cw, "bigram", tokens=tokens, k=k, n_rows=n_rows, label=label)]
    for lay, h in _focus_heads(induction, copying, cfg.n_heads):
        for kind in KINDS:
            tables.append(
                token_table(cw, kind, lay, h, tokens=tokens, k=k, n_rows=n_rows, label=label)
            )
    trigrams = skip_trigrams(cw, label=label, top=10) if cfg.n_layers == 1 else []
    seq_len = max(1, min(pattern_seq_len, (cfg.n_ctx - 1) // 2))
    rep = repeated_tokens(model, seq_len, 1, seed=1).to(model.device)
    with torch.no_grad():
        _, cache = model.run_with_cache(rep, names_filter=lambda n: n.endswith("hook_pattern"))
    patterns = (
        torch.stack(
            [
                cache[f"blocks.{lay}.attn.hook_pattern"][0].float().cpu()
                for lay in range(cfg.n_layers)
            ]
        )
        if cfg.n_layers
        else torch.zeros(0, cfg.n_heads, 1, 1)
    )
    paths, top, last = None, [], None
    if prompt is not None:
        paths = path_expansion(model, prompt)
        last = int(paths.logits[-1].argmax())
        contrib = paths.contributions(-1, last)
        top = sorted(contrib.items(), key=lambda kv: -abs(kv[1]))[:8]
    summary = (
        f"{cfg.n_layers} layer{'' if cfg.n_layers == 1 else 's'}, {cfg.n_heads} heads, "
        f"d_model {cfg.d_model}, vocab {cfg.d_vocab}, "
        f"context {cfg.n_ctx}{', attention-only' if cfg.attn_only else ''}"
    )
    return CircuitReport(
        cfg.name,
        summary,
        cw.ln.describe(),
        notes,
        induction,
        comps,
        copying,
        offsets,
        tables,
        trigrams,
        patterns,
        seq_len,
        paths,
        top,
        last,
        None if last is None else label(last),
    )


def _focus_heads(
    induction: InductionCircuit, copying: CopyingScores, n_heads: int
) -> list[tuple[int, int]]:
    """Induction heads (up to 2) when found, else the two heads with the highest copying score."""
    if induction.induction_heads:
        ids = [h for h, _ in induction.induction_heads[:2]]
        return [(int(a[1:]), int(b[1:])) for a, b in (i.split(".") for i in ids)]
    flat = copying.scores.flatten()
    best = flat.topk(min(2, flat.numel())).indices.tolist()
    return [(i // n_heads, i % n_heads) for i in best]
