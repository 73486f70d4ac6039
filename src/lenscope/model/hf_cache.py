"""What the local Hugging Face cache holds, by family, and why an entry cannot load (offline).

Reads only `config.json`, the safetensors index and each shard's header: a listing never reads
weights and never fails on one bad entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from lenscope.errors import LenscopeError
from lenscope.model.hf import FAMILIES, SHARDED_BIN, hf_cache_dirs, unsupported_reason
from lenscope.model.mapped import TensorInfo, check_files


@dataclass
class CacheEntry:
    name: str  # org/name, as `load_model` takes it
    path: Path  # the snapshot directory
    family: str  # config.json's model_type ("?" when unknown)
    summary: str  # size, dtype and shards; or a note
    problem: str = ""  # why it cannot load; "" when it can


def scan_hf_cache() -> list[CacheEntry]:
    """Every `models--org--name` in the local caches, sorted by family then name."""
    out: list[CacheEntry] = []
    seen: set[Path] = set()
    for root in hf_cache_dirs():
        if not root.is_dir() or root.resolve() in seen:
            continue
        seen.add(root.resolve())
        for d in sorted(root.glob("models--*")):
            if d.is_dir():
                out.append(inspect_repo(d))
    return sorted(out, key=lambda e: (e.family, e.name))


def _snapshot(repo: Path) -> Path | None:
    snaps = repo / "snapshots"
    if not snaps.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file() and (snaps / ref.read_text().strip()).is_dir():
        return snaps / ref.read_text().strip()
    cands = sorted((p for p in snaps.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    return cands[-1] if cands else None


def inspect_repo(repo: Path) -> CacheEntry:
    name = repo.name.removeprefix("models--").replace("--", "/")
    snap = _snapshot(repo)
    if snap is None:
        return CacheEntry(name, repo, "?", "", "incomplete download: no snapshot")
    f = snap / "config.json"
    if not f.is_file():
        return CacheEntry(name, snap, "?", "", "no config.json: not a model checkpoint")
    try:
        raw = json.loads(f.read_text("utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        return CacheEntry(name, snap, "?", "", f"config.json is unreadable: {e}")
    family = str(raw.get("model_type", "?"))
    entry = CacheEntry(name, snap, family, "")
    if family not in FAMILIES:
        entry.problem = "architecture " + unsupported_reason(raw, name).split(": ", 1)[1]
        return entry
    try:
        FAMILIES[family][0](raw, name)  # config-level limits (rope scaling, ...)
        headers = check_files(snap)
    except LenscopeError as e:
        entry.problem = str(e).replace(f"{snap}: ", "").replace(str(snap) + "/", "")
        return entry
    if headers is None:
        entry.summary, entry.problem = _no_safetensors(snap)
    else:
        entry.summary = _describe(headers)
    if not entry.problem and any((repo / "blobs").glob("*.incomplete")):
        # this snapshot's files are all whole (checked above): another file is being fetched
        entry.summary += " (a download into this repo is unfinished: blobs/*.incomplete)"
    return entry


def _no_safetensors(snap: Path) -> tuple[str, str]:
    if (snap / "pytorch_model.bin").is_file():
        return (
            "weights only in pytorch_model.bin: read whole, not memory-mapped; convert to "
            "safetensors for large models",
            "",
        )
    if (snap / "pytorch_model.bin.index.json").is_file():
        return "", "no safetensors weights: it " + SHARDED_BIN
    return "", "no weights: no model.safetensors, safetensors index or pytorch_model.bin"


def _describe(headers: dict[str, dict[str, TensorInfo]]) -> str:
    n, by_dtype = 0, dict[torch.dtype, int]()
    for infos in headers.values():
        for t in infos.values():
            k = 1
            for s in t.shape:
                k *= s
            n += k
            by_dtype[t.dtype] = by_dtype.get(t.dtype, 0) + t.end - t.begin
    dtype = max(by_dtype, key=lambda k: by_dtype[k]) if by_dtype else None
    size = f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"
    shards = len(headers)
    return (
        f"{size} params"
        + (f", {str(dtype).removeprefix('torch.')}" if dtype is not None else "")
        + (f", {shards} shards" if shards > 1 else "")
    )
