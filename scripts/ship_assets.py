"""Copy trained subject models into `assets/` (float16) with their held-out tokens.

Run after `lenscope train --recipe attn1|attn2|mini` (LENSCOPE_HOME as used for training):
    .venv/bin/python scripts/ship_assets.py attn1 attn2 mini
"""

from __future__ import annotations

import lenscope  # noqa: F401  before torch: large tensors on huge pages (lenscope.runtime)

# isort: split

import sys

import numpy as np
import torch
from safetensors.torch import save_file

from lenscope.artifacts import lenscope_home
from lenscope.data.prepare import prepare_data
from lenscope.model import load_model, save_model
from lenscope.model.load import assets_dir
from lenscope.train.loop import token_counts
from lenscope.train.probes import induction_probe


def _probe_figures(model: torch.nn.Module) -> dict[str, object]:
    pr = induction_probe(model)  # type: ignore[arg-type]
    li, hi, vi = pr.best_induction
    lp, hp, vp = pr.best_prev_token
    return {
        "induction_score": vi,
        "induction_head": f"L{li}.H{hi}",
        "prev_token_score": vp,
        "prev_token_head": f"L{lp}.H{hp}",
        "repeat_loss_first": pr.loss_first_half,
        "repeat_loss_second": pr.loss_repeat_half,
    }


def main(names: list[str]) -> None:
    ds = prepare_data((), 4096, progress=False)
    counts = token_counts(ds)
    for name in names:
        src = lenscope_home() / "models" / name
        model = load_model(src)
        man = model.manifest  # type: ignore[attr-defined]
        prov = man.provenance | {"shipped_as": "float16 copy of " + name}
        dest = assets_dir() / "models" / name
        model.manifest.data["token_counts"] = counts  # type: ignore[attr-defined]
        ev = man.data["eval"]
        if man.provenance["recipe"].get("probe_induction"):
            ev = ev | _probe_figures(model)  # measured with the frequency-based token pool
        save_model(model, dest, provenance=prov, eval=ev, half=True, token_counts=counts)
        print(f"shipped {name} -> {dest} ({sum(f.stat().st_size for f in dest.iterdir()):,} bytes)")
    val = torch.from_numpy(np.asarray(ds.val, dtype=np.int32))
    out = assets_dir() / "data" / "stdlib-bpe4096-val.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"tokens": val}, str(out), metadata={"source": str(ds.path), "split": "val"})
    print(f"held-out tokens -> {out} ({len(val):,} tokens)")


if __name__ == "__main__":
    main(sys.argv[1:] or ["attn1", "attn2", "mini"])
