"""Component records: top-activating dataset examples, samples, statistics and output-token
effects of every MLP neuron, attention head and SAE latent, harvested once, queried via DuckDB."""

from __future__ import annotations

from lenscope.records.active import most_active
from lenscope.records.config import Group, HarvestConfig
from lenscope.records.harvest import harvest
from lenscope.records.results import (
    ActiveNode,
    Example,
    Explanation,
    NodeRecord,
    TokenEffect,
    TokenHit,
)
from lenscope.records.store import Records, default_records_dir, find_records, open_records

__all__ = [
    "ActiveNode",
    "Example",
    "Explanation",
    "Group",
    "HarvestConfig",
    "NodeRecord",
    "Records",
    "TokenEffect",
    "TokenHit",
    "default_records_dir",
    "find_records",
    "harvest",
    "most_active",
    "open_records",
]
