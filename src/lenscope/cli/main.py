"""The `lenscope` command: one Typer app; each command group lives in its own module."""

from __future__ import annotations

import sys

import typer

from lenscope.cli import (
    circuits,
    demo,
    discover,
    graph,
    lens,
    markov,
    models,
    records,
    run,
    sae,
    serve,
    train,
    transcoder,
    why,
)
from lenscope.cli.common import err_console
from lenscope.errors import LenscopeError
from lenscope.text import check_arguments

app = typer.Typer(
    name="lenscope",
    help="A transformer debugger for mechanistic interpretability.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

for _module in (
    models, train, run, demo, circuits, markov, lens, sae, transcoder, why, graph, discover, records,
    serve,
):  # fmt: skip
    _module.register(app)


def main() -> None:
    """Entry point: a user mistake (`LenscopeError`) is one red line and exit code 1; so is an
    argument that is not UTF-8 text (checked here, where text enters)."""
    try:
        check_arguments(sys.argv[1:])
        app()
    except LenscopeError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
