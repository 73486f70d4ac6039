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
        t.add_column("name", overflow="fold")  # the thing to copy: never cut with an ellipsis
        t.add_column("source")
        t.add_column("summary")
        t.add_column("path", overflow="fold")
        for e in entries:
            source = f"{e.source} (shadowed)" if e.shadowed else e.source
            t.add_row(e.name, source, e.summary, str(e.path), style="dim" if e.shadowed else None)
        console.print(t)
        if any(e.shadowed for e in entries):
            console.print(
                "shadowed: a model you trained has this name and loads instead; the shipped "
                "one loads by its path."
            )
        console.print("Any local Hugging Face checkpoint directory loads by its path too.")
