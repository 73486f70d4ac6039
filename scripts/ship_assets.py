"""Copy trained subject models into `assets/` (float16) with their held-out tokens.

Run after `lenscope train --recipe attn1|attn2|mini` (LENSCOPE_HOME as used for training):
    .venv/bin/python scripts/ship_assets.py attn1 attn2 mini
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from safetensors.torch import save_file

from lenscope.artifacts import lenscope_home
from lenscope.model import load_model, save_model
from lenscope.model.load import assets_dir
from lenscope.train.prepare import prepare_data


def main(names: list[str]) -> None:
    for name in names:
        src = lenscope_home() / "models" / name
        model = load_model(src)
        man = model.manifest  # type: ignore[attr-defined]
        prov = man.provenance | {"shipped_as": "float16 copy of " + name}
        dest = assets_dir() / "models" / name
        save_model(model, dest, provenance=prov, eval=man.data["eval"], half=True)
        print(f"shipped {name} -> {dest} ({sum(f.stat().st_size for f in dest.iterdir()):,} bytes)")
    ds = prepare_data((), 4096, progress=False)
    val = torch.from_numpy(np.asarray(ds.val, dtype=np.int32))
    out = assets_dir() / "data" / "stdlib-bpe4096-val.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"tokens": val}, str(out), metadata={"source": str(ds.path), "split": "val"})
    print(f"held-out tokens -> {out} ({len(val):,} tokens)")


if __name__ == "__main__":
    main(sys.argv[1:] or ["attn1", "attn2", "mini"])
