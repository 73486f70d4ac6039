"""Add training token counts to the manifests of snapshots written before recipes recorded them.

LENSCOPE_HOME=... .venv/bin/python scripts/backfill_counts.py attn1 attn2
"""

from __future__ import annotations

import json
import sys

from lenscope.artifacts import lenscope_home
from lenscope.data.prepare import prepare_data
from lenscope.train.loop import token_counts


def main(names: list[str]) -> None:
    counts = token_counts(prepare_data((), 4096, progress=False))
    for name in names:
        for snap in sorted((lenscope_home() / "runs" / name / "snapshots").glob("step_*")):
            f = snap / "manifest.json"
            man = json.loads(f.read_text())
            if "token_counts" not in man["data"]:
                man["data"]["token_counts"] = counts
                f.write_text(json.dumps(man, indent=2) + "\n")
                print(f"added token counts to {snap}")


if __name__ == "__main__":
    main(sys.argv[1:])
