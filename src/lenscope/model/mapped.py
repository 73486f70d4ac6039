"""Memory-mapped safetensors: validate every header first, then map the files without reading them.

`open_safetensors` checks a single file or a sharded index (every shard present, every header whole
and inside its file, every tensor the index names present in its shard) before a single weight is
read, so a bad checkpoint fails with one clear line and nothing half-loaded. The tensors it returns
are views into private (copy-on-write) mappings: pages come from disk only when a tensor is read,
and `Mapped.release` gives a tensor's pages back once it has been copied into the model, so loading
holds about one copy of the weights at a time.
"""

from __future__ import annotations

import json
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lenscope.errors import CheckpointError

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
_MAX_HEADER = 100_000_000  # safetensors' own limit


@dataclass
class TensorInfo:
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int  # byte offsets from the start of the file
    end: int


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Parse and check one safetensors header against the file's size; raise on any damage."""

    def bad(why: str) -> CheckpointError:
        return CheckpointError(
            f"{path} is corrupt or truncated ({why}); re-save or re-download the checkpoint"
        )

    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise bad(f"{size} bytes, too short for a header")
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER or 8 + n > size:
                raise bad(f"header of {n} bytes in a file of {size}")
            raw = json.loads(f.read(n).decode("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{path} is missing (a broken link or an incomplete download)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise bad(f"header is not JSON: {e}") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e}") from None
    if not isinstance(raw, dict):
        raise bad("header is not a JSON object")
    start, out = 8 + n, {}
    for name, meta in raw.items():
        if name == "__metadata__":
            continue
        try:
            dtype = DTYPES[meta["dtype"]]
            shape = tuple(int(s) for s in meta["shape"])
            lo, hi = (int(x) for x in meta["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise bad(f"tensor {name!r} has an unreadable entry {meta!r}") from None
        numel = 1
        for s in shape:
            numel *= s
        if min(shape, default=0) < 0 or not 0 <= lo <= hi or hi - lo != numel * dtype.itemsize:
            raise bad(f"tensor {name!r}: offsets {lo}..{hi} do not fit shape {list(shape)}")
        if start + hi > size:
            raise bad(f"tensor {name!r} ends at byte {start + hi}, the file has {size}")
        out[name] = TensorInfo(dtype, shape, start + lo, start + hi)
    return out


def shard_files(directory: Path) -> dict[str, list[str]] | None:
    """{shard file: tensor names} from the index or the single file; None if neither exists."""
    index = directory / INDEX
    if (directory / SINGLE).is_file():
        return {SINGLE: []}
    if not index.is_file():
        return None
    try:
        wmap = json.loads(index.read_text("utf-8"))["weight_map"]
        if not isinstance(wmap, dict):
            raise TypeError("weight_map is not an object")
        shards: dict[str, list[str]] = {}
        for tensor, file in wmap.items():
            shards.setdefault(str(file), []).append(str(tensor))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{index} is not a valid safetensors index: {e}") from None
    return shards


def check_files(directory: Path) -> dict[str, dict[str, TensorInfo]] | None:
    """Every shard's checked header, or None when the directory has no safetensors weights."""
    shards = shard_files(directory)
    if shards is None:
        return None
    missing = [s for s in shards if not (directory / s).is_file()]
    if missing:
        raise CheckpointError(
            f"{directory}: shard {missing[0]} named in {INDEX} is missing"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; the download is incomplete: fetch the checkpoint again"
        )
    headers = {s: read_header(directory / s) for s in shards}
    for s, names in shards.items():
        absent = [t for t in names if t not in headers[s]]
        if absent:
            raise CheckpointError(
                f"{directory}: {INDEX} puts tensor {absent[0]!r} in {s}, which does not hold it"
            )
    return headers


@dataclass
class Mapped:
    """Private mappings of a checkpoint's files and views of their tensors."""

    tensors: dict[str, Tensor] = field(default_factory=dict)
    _maps: list[tuple[mmap.mmap, int]] = field(default_factory=list)  # (map, base address)

    def release(self, t: Tensor) -> None:
        """Drop the resident pages under `t` if it lies in a mapping (they re-read from disk if
        touched again). Never changes a value: the mappings are never written."""
        if t.numel() == 0 or any(s < 0 for s in t.stride()):
            return
        lo = t.data_ptr()
        span = 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride(), strict=True))
        for mm, base in self._maps:
            if base <= lo < base + len(mm):
                _dontneed(mm, lo - base, span * t.element_size())

    def holds(self, t: Tensor) -> bool:
        """Whether `t` is a view into one of the mappings."""
        lo = t.data_ptr()
        return any(base <= lo < base + len(mm) for mm, base in self._maps)

    def release_all(self) -> None:
        for mm, _ in self._maps:
            _dontneed(mm, 0, len(mm))


def _dontneed(mm: mmap.mmap, offset: int, length: int) -> None:
    page = mmap.PAGESIZE
    a = offset // page * page
    b = min(len(mm), -(-(offset + length) // page) * page)
    if b > a and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED, a, b - a)


def open_safetensors(directory: Path) -> Mapped | None:
    """Check then map a checkpoint's safetensors; None when it has none."""
    headers = check_files(directory)
    if headers is None:
        return None
    out = Mapped()
    for s, infos in headers.items():
        if not infos:
            continue
        with (directory / s).open("rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        whole = torch.frombuffer(mm, dtype=torch.uint8)  # shares the mapping, reads nothing
        out._maps.append((mm, whole.data_ptr()))
        for name, info in infos.items():
            out.tensors[name] = _view(whole, info)
    return out


def _view(whole: Tensor, info: TensorInfo) -> Tensor:
    raw = whole[info.begin : info.end]
    if info.dtype == torch.bool or info.dtype.itemsize == 1:
        return raw.view(info.dtype).reshape(info.shape)
    if info.begin % info.dtype.itemsize:
        raw = raw.clone()  # a misaligned tensor (no writer we know makes one): read it into memory
    return raw.view(info.dtype).reshape(info.shape)


def tensor_bytes(tensors: dict[str, Any]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())
