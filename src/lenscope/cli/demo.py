"""`lenscope demo`: the main job on the embedded default (what `make demo` runs)."""

from __future__ import annotations

import typer

from lenscope.circuits import induction_summary
from lenscope.cli.common import DEVICE_OPTION, console
from lenscope.cli.run import render_next_tokens
from lenscope.defaults import DEMO_MODEL, DEMO_PROMPT
from lenscope.model import load_model
from lenscope.predict import next_tokens


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        serve_page: bool = typer.Option(
            True, "--serve/--no-serve", help="Start the debugger page."
        ),
        port: int = typer.Option(8765, "--port", help="Port for the debugger page."),
        records: bool = typer.Option(
            True, "--records/--no-records", help="Harvest mini's records when missing (minutes)."
        ),
        device: str = DEVICE_OPTION,
    ) -> None:
        """Ask `mini` a code question, check `attn2` for induction heads, serve the debugger."""
        mini = load_model(DEMO_MODEL, device=device)
        render_next_tokens(next_tokens(mini, DEMO_PROMPT, 8))
        console.print(induction_summary(load_model("attn2", device=device)), highlight=False)
        if records:
            from lenscope.cli.records import ensure_records

            ensure_records(
                DEMO_MODEL, log=lambda m: console.print(m, highlight=False), device=device
            )
        if serve_page:
            from lenscope.server import ServerConfig, serve

            cfg = ServerConfig(model=DEMO_MODEL, port=port, device=device)
            serve(cfg, log=lambda m: console.print(m, highlight=False, soft_wrap=True))
