"""`lenscope serve MODEL`: the activation server and the web debugger on one port.

lenscope serve mini                                  # http://127.0.0.1:8765/ with a question
lenscope serve mini --sae mini-resid2 --records DIR  # latents as nodes, node pages from DIR
lenscope serve mini --host 0.0.0.0 --token SECRET    # exposed: every API call needs the token
"""

from __future__ import annotations

from pathlib import Path

import typer

from lenscope.server.config import DEFAULT_HOST, DEFAULT_PORT


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        model: str = typer.Argument(..., help="Model name (e.g. mini) or checkpoint directory."),
        sae: list[str] | None = typer.Option(
            None, "--sae", help="SAE name or path whose latents become nodes (repeatable)."
        ),
        records: Path | None = typer.Option(
            None, "--records", help="Records directory (default: the model's, when harvested)."
        ),
        host: str = typer.Option(
            DEFAULT_HOST, "--host", help="Address to bind; anything but loopback needs --token."
        ),
        port: int = typer.Option(DEFAULT_PORT, "--port", help="TCP port (0 picks a free one)."),
        token: str | None = typer.Option(
            None, "--token", envvar="LENSCOPE_TOKEN", help="Secret every API request must send."
        ),
        workers: int = typer.Option(
            4, "--workers", help="Questions computed at once (the rest wait in order)."
        ),
        auto: bool = typer.Option(
            True,
            "--auto/--no-auto",
            help="Without --sae/--records: splice SAEs trained on MODEL, use its records.",
        ),
    ) -> None:
        """Serve MODEL's debugger, node pages, lens, circuits and Markov views over HTTP."""
        from lenscope.cli.common import console
        from lenscope.server import ServerConfig, serve

        cfg = ServerConfig(
            model=model,
            saes=list(sae or []),
            records=records,
            host=host,
            port=port,
            token=token,
            workers=workers,
            auto=auto,
        )
        serve(cfg, log=lambda m: console.print(m, highlight=False, soft_wrap=True))
