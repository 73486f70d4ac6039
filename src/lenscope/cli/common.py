"""What every CLI command shares: JSON output of result objects, the console, error handling."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from lenscope.jsonable import to_jsonable

console = Console()
err_console = Console(stderr=True)

JSON_OPTION = typer.Option(False, "--json", help="Print the result as JSON instead of tables.")
EMPTY_PROMPT = "the prompt is empty: give some text"  # as `lenscope run` says it


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2) + "\n")


def token_text(tok: str | None) -> str:
    """A token for rich output, quoted like `repr` so that whitespace shows (`' 10'` vs `'10'`),
    markup escaped; "" for no token. `lens`, `why` and `circuits` print tokens this way (as
    `run` does with `repr`)."""
    from lenscope.viz.lens_heatmaps import quoted_token

    return "" if tok is None else escape(quoted_token(tok))
