"""The JSON form of result objects: one walk that every face uses (the CLI's --json, tests).

Results are dataclasses (`JsonResult.to_json()`); inputs that need validation (questions,
intervention sets, HTTP requests) are pydantic models and dump through `model_dump`. Tensors
and arrays become lists, non-finite floats `None` (as pydantic's JSON mode writes them), paths
strings, enums their values.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from pathlib import Path
from typing import Any


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types from result objects: dataclasses, pydantic models, tensors, arrays, paths."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "to_json") and callable(obj.to_json):
        return to_jsonable(obj.to_json())
    if hasattr(obj, "model_dump") and callable(obj.model_dump):
        return to_jsonable(obj.model_dump())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclass_fields(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if hasattr(obj, "tolist"):
        return to_jsonable(obj.tolist())
    return str(obj)


def dataclass_fields(obj: Any) -> dict[str, Any]:
    """A dataclass instance's fields, each in its JSON form."""
    return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


class JsonResult:
    """Base of result dataclasses: `to_json()` is the JSON form the CLI's --json prints (and,
    for the debugger's results, what the HTTP API answers)."""

    def to_json(self) -> dict[str, Any]:
        return dataclass_fields(self)
