"""`lenscope run MODEL "prompt"`: the model's next-token predictions as a table."""

from __future__ import annotations

import typer
from rich.table import Table

from lenscope.cli.common import DEVICE_OPTION, DTYPE_OPTION, JSON_OPTION, console, print_json
from lenscope.device import parse_dtype
from lenscope.model import load_model
from lenscope.predict import NextTokens, next_tokens


def render_next_tokens(r: NextTokens) -> None:
    console.print(
        f"[bold]{r.model}[/] on {len(r.str_tokens)} tokens: "
        + " ".join(f"[reverse]{t!r}[/]" for t in r.str_tokens[-12:]),
        highlight=False,
    )
    t = Table(title=f"next token (entropy {r.entropy:.2f} nats)")
    t.add_column("#", justify="right")
    t.add_column("token")
    t.add_column("id", justify="right")
    t.add_column("prob", justify="right")
    t.add_column("logit", justify="right")
    for i, c in enumerate(r.candidates, 1):
        t.add_row(str(i), repr(c.token), str(c.id), f"{c.prob:.1%}", f"{c.logit:.2f}")
    console.print(t)


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        model: str = typer.Argument(
            ..., help="Model name (see `lenscope models`) or checkpoint dir."
        ),
        prompt: str = typer.Argument(..., help="The prompt text."),
        top_k: int = typer.Option(10, "--top-k", "-k", help="How many candidates to show."),
        device: str = DEVICE_OPTION,
        dtype: str = DTYPE_OPTION,
        json: bool = JSON_OPTION,
    ) -> None:
        """Show the model's top next-token predictions for a prompt."""
        m = load_model(model, device=device, dtype=parse_dtype(dtype))
        r = next_tokens(m, prompt, top_k)
        if json:
            print_json(r)
        else:
            render_next_tokens(r)
