"""`lenscope models`: what can be loaded by name, and what in the HF cache cannot and why."""

from __future__ import annotations

from itertools import groupby

import typer
from rich.table import Table

from lenscope.cli.common import JSON_OPTION, console, print_json, print_loadable
from lenscope.model.load import ModelEntry, list_models


def register(app: typer.Typer) -> None:
    @app.command()
    def models(json: bool = JSON_OPTION) -> None:
        """List shipped models, models you trained, and checkpoints in the local HF cache."""
        entries = list_models()
        if json:
            print_json(entries)
            return
        own = [e for e in entries if e.source != "hf-cache"]
        cached = [e for e in entries if e.source == "hf-cache"]
        print_loadable(own, "models", "a model")
        if cached:
            console.print(_cache_table(cached))
        console.print("Any local Hugging Face checkpoint directory loads by its path too.")


def _cache_table(entries: list[ModelEntry]) -> Table:
    """The local Hugging Face cache, one section per family; an entry that cannot load says why."""
    t = Table(title="local Hugging Face cache, by family")
    t.add_column("family")
    t.add_column("name", overflow="fold")
    t.add_column("status", overflow="fold")
    t.add_column("path", overflow="fold")
    groups = groupby(sorted(entries, key=lambda e: (e.family, e.name)), key=lambda e: e.family)
    for i, (family, group) in enumerate(groups):
        if i:
            t.add_section()
        for e in group:
            status = f"[red]cannot load: {e.problem}[/]" if e.problem else e.summary
            t.add_row(family, e.name, status, str(e.path))
    return t
