"""`lenscope models`: what can be loaded by name."""

from __future__ import annotations

import typer
from rich.table import Table

from lenscope.cli.common import JSON_OPTION, console, print_json
from lenscope.model.load import list_models


def register(app: typer.Typer) -> None:
    @app.command()
    def models(json: bool = JSON_OPTION) -> None:
        """List shipped models, models you trained, and checkpoints in the local HF cache."""
        entries = list_models()
        if json:
            print_json(entries)
            return
        t = Table(title="models lenscope can load by name")
        for c in ("name", "source", "summary", "path"):
            t.add_column(c)
        for e in entries:
            t.add_row(e.name, e.source, e.summary, str(e.path))
        console.print(t)
        console.print("Any local Hugging Face checkpoint directory loads by its path too.")
