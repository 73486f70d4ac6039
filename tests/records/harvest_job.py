"""A harvest in its own process, for the kill -9 and torchrun tests.

    python harvest_job.py MODEL_DIR SAE_DIR CORPUS DEST CONFIG_JSON [SECONDS_PER_BATCH]

The optional delay slows every batch down so that a test can kill the process mid-harvest.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time

import torch

from lenscope import load_model
from lenscope.records import HarvestConfig, harvest
from lenscope.sae import load_sae

harvest_mod = importlib.import_module("lenscope.records.harvest")


def main() -> None:
    torch.set_num_threads(1)
    model_dir, sae_dir, corpus, dest, cfg_json = sys.argv[1:6]
    delay = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    if delay:
        original = harvest_mod._Run.batch

        def slow(self: object, rows: object, row0: int) -> None:
            time.sleep(delay)
            original(self, rows, row0)

        harvest_mod._Run.batch = slow
    cfg = json.loads(cfg_json)
    cfg["quantile_levels"] = tuple(cfg["quantile_levels"])
    res = harvest(
        load_model(model_dir),
        dest,
        saes=[load_sae(sae_dir)],
        config=HarvestConfig(**cfg),
        corpus=[corpus],
        progress=False,
        log=lambda _: None,
    )
    rank = int(os.environ.get("RANK", "0"))
    print(json.dumps({"rank": rank, "n_tokens": res.n_tokens, "shards_run": res.shards_run}))


if __name__ == "__main__":
    main()
