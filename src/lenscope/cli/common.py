"""What every CLI command shares: JSON output of result objects, the console, error handling."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)

JSON_OPTION = typer.Option(False, "--json", help="Print the result as JSON instead of tables.")
EMPTY_PROMPT = "the prompt is empty: give some text"  # as `lenscope run` says it


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
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
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


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2) + "\n")


def token_text(tok: str | None) -> str:
    """A token for rich output, quoted like `repr` so that whitespace shows (`' 10'` vs `'10'`),
    markup escaped; "" for no token. `lens`, `why` and `circuits` print tokens this way (as
    `run` does with `repr`)."""
    from lenscope.viz.lens_heatmaps import quoted_token

    return "" if tok is None else escape(quoted_token(tok))
