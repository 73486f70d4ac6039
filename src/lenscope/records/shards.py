"""A harvest's work directory: identity, per-run state files, atomic saves, resume and merge.

Each process keeps one cumulative state over the shards it finished and rewrites its own file
`state-<id>.safetensors` (atomically) after every shard. A restarted harvest reads every state
file to learn which shards are done, runs the rest, and the final merge folds all files together.
Because merges are exact, the records do not depend on how many runs or ranks produced them.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from lenscope.errors import ArtifactError
from lenscope.records.state import GroupState, SharedState

IDENTITY = "harvest.json"


def work_dir(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.harvest")


def check_identity(work: Path, identity: dict[str, Any], log: Callable[[str], None]) -> bool:
    """True when `work` holds a harvest of exactly this identity (resume it); else start anew."""
    f = work / IDENTITY
    if f.is_file():
        try:
            same = json.loads(f.read_text("utf-8")) == identity
        except (json.JSONDecodeError, UnicodeDecodeError):
            same = False
        if same:
            return True
        log(f"{work} holds a different harvest (model, corpus or settings); starting over")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    tmp = work / f".{IDENTITY}.{os.getpid()}"
    tmp.write_text(json.dumps(identity, indent=1), "utf-8")
    os.replace(tmp, f)
    return False


def new_state_path(work: Path) -> Path:
    return work / f"state-{uuid.uuid4().hex[:12]}.safetensors"


def state_files(work: Path) -> list[Path]:
    return sorted(work.glob("state-*.safetensors"))


def save_state(path: Path, groups: dict[str, GroupState], shared: SharedState) -> None:
    tensors: dict[str, torch.Tensor] = {
        "shared/r_key": shared.r_key,
        "shared/r_pos": shared.r_pos,
        "shared/tok_count": shared.tok_count,
    }
    exact: dict[str, list[str]] = {}
    for name, st in groups.items():
        for k, v in st.t.items():
            if k != "mom":
                tensors[f"{name}/{k}"] = v
        exact[name] = [format(x, "x") for x in st.exact]
    meta = {
        "done": json.dumps(sorted(shared.done)),
        "n_tokens": str(shared.n_tokens),
        "exact": json.dumps(exact),
    }
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(cpu, str(tmp), metadata=meta)
    os.replace(tmp, path)


def done_shards(path: Path) -> set[int]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return set(json.loads(meta["done"]))
    except (SafetensorError, OSError, KeyError, ValueError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path} is not a readable harvest state ({e}); delete it") from None


def load_state(
    path: Path, groups: dict[str, GroupState], shared: SharedState
) -> tuple[dict[str, GroupState], SharedState]:
    """Fill copies of the empty `groups`/`shared` templates with the state saved at `path`."""
    import copy

    try:
        raw = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        exact = json.loads(meta["exact"])
        done = set(json.loads(meta["done"]))
        n_tokens = int(meta["n_tokens"])
    except (SafetensorError, OSError, KeyError, ValueError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path} is not a readable harvest state ({e}); delete it") from None
    dev = shared.r_key.device
    out_shared = SharedState(
        raw["shared/r_key"].to(dev),
        raw["shared/r_pos"].to(dev),
        raw["shared/tok_count"].to(dev),
        n_tokens,
        done,
    )
    out: dict[str, GroupState] = {}
    for name, tmpl in groups.items():
        st = copy.copy(tmpl)
        st.t = {
            k: (raw[f"{name}/{k}"].to(dev) if k != "mom" else torch.zeros_like(v))
            for k, v in tmpl.t.items()
        }
        st.exact = [int(x, 16) for x in exact[name]]
        out[name] = st
    return out, out_shared
