"""`lenscope serve MODEL`: the activation server and the web debugger on one port.

lenscope serve mini                                  # http://127.0.0.1:8765/ with a question
lenscope serve mini --sae mini-resid2 --records DIR  # latents as nodes, node pages from DIR
lenscope serve mini --host 0.0.0.0 --token SECRET    # exposed: every API call needs the token
lenscope serve mini --llm-url http://127.0.0.1:8000/v1 --llm-model qwen --llm-key-env LLM_KEY
"""

from __future__ import annotations

from pathlib import Path

import typer

from lenscope.cli.common import DEVICE_OPTION
from lenscope.errors import InputError
from lenscope.server.config import DEFAULT_HOST, DEFAULT_PORT, LLMSettings


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
        tuned: str | None = typer.Option(
            None, "--tuned", help="Tuned lens NAME or PATH (default: the model's own, if any)."
        ),
        llm_url: str | None = typer.Option(
            None, "--llm-url", help="OpenAI-compatible endpoint for LLM explanations (…/v1)."
        ),
        llm_model: str | None = typer.Option(
            None, "--llm-model", help="The endpoint's model name (with --llm-url)."
        ),
        llm_key_env: str | None = typer.Option(
            None, "--llm-key-env", help="Environment variable holding the endpoint's API key."
        ),
        llm_timeout: float = typer.Option(
            60.0, "--llm-timeout", help="Seconds per LLM request (then retried once)."
        ),
        device: str = DEVICE_OPTION,
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
            llm=llm_settings(llm_url, llm_model, llm_key_env, llm_timeout),
            tuned=tuned,
            device=device,
        )
        serve(cfg, log=lambda m: console.print(m, highlight=False, soft_wrap=True))


def llm_settings(
    url: str | None, model: str | None, key_env: str | None, timeout: float
) -> LLMSettings | None:
    """The LLM explainer's settings from the command line (the key stays in its variable)."""
    if url is None:
        if model is not None or key_env is not None:
            raise InputError("--llm-model and --llm-key-env need --llm-url URL (the endpoint)")
        return None
    if model is None:
        raise InputError("--llm-url needs --llm-model NAME (the endpoint's model name)")
    settings = LLMSettings(url, model, key_env, timeout=timeout)
    settings.check()
    return settings
