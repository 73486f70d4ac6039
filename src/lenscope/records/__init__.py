"""Component records: top-activating dataset examples, samples, statistics and output-token
effects of every MLP neuron, attention head and SAE latent, harvested once, queried via DuckDB."""

from __future__ import annotations

from lenscope.records.active import most_active
from lenscope.records.config import (
    SCHEMA_VERSION,
    Group,
    HarvestConfig,
    check_node_id,
    node_groups,
)
from lenscope.records.harvest import HarvestResult, harvest
from lenscope.records.results import (
    ActiveNode,
    Example,
    Explanation,
    Histogram,
    NodeRecord,
    QuantileBin,
    Stats,
    TokenEffect,
    TokenHit,
)
from lenscope.records.store import Records, default_records_dir, find_records, open_records

__all__ = [
    "SCHEMA_VERSION",
    "ActiveNode",
    "Example",
    "Explanation",
    "Group",
    "HarvestConfig",
    "HarvestResult",
    "Histogram",
    "NodeRecord",
    "QuantileBin",
    "Records",
    "Stats",
    "TokenEffect",
    "TokenHit",
    "check_node_id",
    "default_records_dir",
    "find_records",
    "harvest",
    "most_active",
    "node_groups",
    "open_records",
]
