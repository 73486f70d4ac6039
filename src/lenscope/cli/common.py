"""What every CLI command shares: JSON output of result objects, the console, error handling."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lenscope.device import DEVICE_HELP, DTYPE_HELP
from lenscope.jsonable import to_jsonable

console = Console()
err_console = Console(stderr=True)

JSON_OPTION = typer.Option(False, "--json", help="Print the result as JSON instead of tables.")
DEVICE_OPTION = typer.Option("cpu", "--device", help=DEVICE_HELP)
DTYPE_OPTION = typer.Option("auto", "--dtype", help=DTYPE_HELP)
EMPTY_PROMPT = "the prompt is empty: give some text"  # as `lenscope run` says it


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2) + "\n")


def token_text(tok: str | None) -> str:
    """A token for rich output, quoted like `repr` so that whitespace shows (`' 10'` vs `'10'`),
    markup escaped; "" for no token. `lens`, `why` and `circuits` print tokens this way (as
    `run` does with `repr`)."""
    from lenscope.viz.lens_heatmaps import quoted_token

    return "" if tok is None else escape(quoted_token(tok))


class LoadableEntry(Protocol):
    """One artifact that loads by name (a model, an SAE): what `print_loadable` shows of it."""

    name: str
    source: str
    path: Path
    summary: str
    shadowed: bool


def print_loadable(entries: Sequence[LoadableEntry], what: str, trained: str) -> None:
    """The table of `lenscope models` / `lenscope sae list`: `what` names the artifacts ("SAEs"),
    `trained` one trained artifact ("an SAE"), for the note on shadowed shipped names."""
    t = Table(title=f"{what} lenscope can load by name")
    t.add_column("name", overflow="fold")  # the thing to copy: never cut with an ellipsis
    t.add_column("source")
    t.add_column("summary", overflow="fold")
    t.add_column("path", overflow="fold")
    for e in entries:
        source = f"{e.source} (shadowed)" if e.shadowed else e.source
        t.add_row(e.name, source, e.summary, str(e.path), style="dim" if e.shadowed else None)
    console.print(t)
    if any(e.shadowed for e in entries):
        console.print(
            f"shadowed: {trained} you trained has this name and loads instead; the shipped one "
            "loads by its path."
        )
