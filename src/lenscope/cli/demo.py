"""`lenscope demo`: the main job on the embedded default (what `make demo` runs)."""

from __future__ import annotations

import typer

from lenscope.cli.common import console
from lenscope.cli.run import render_next_tokens
from lenscope.defaults import DEMO_MODEL, DEMO_PROMPT
from lenscope.model import load_model
from lenscope.predict import next_tokens
from lenscope.train.probes import induction_probe



def register(app: typer.Typer) -> None:
    @app.command()
    def demo() -> None:
        """Ask the shipped `mini` model a code question and check `attn2` for induction heads."""
        mini = load_model(DEMO_MODEL)
        render_next_tokens(next_tokens(mini, DEMO_PROMPT, 8))
        attn2 = load_model("attn2")
        pr = induction_probe(attn2)
        layer, head, score = pr.best_induction
        pl, ph, ps = pr.best_prev_token
        console.print(
            f"[bold]attn2[/]: induction head [bold]L{layer}.H{head}[/] (score {score:.2f}), "
            f"previous-token head L{pl}.H{ph} ({ps:.2f}); loss on a repeated random sequence "
            f"{pr.loss_first_half:.2f} -> {pr.loss_repeat_half:.2f} nats on the repeat"
        )
