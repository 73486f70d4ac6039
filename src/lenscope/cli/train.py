"""`lenscope train --recipe NAME`: train one of lenscope's own subject models."""

from __future__ import annotations

from pathlib import Path

import typer

from lenscope.cli.common import JSON_OPTION, print_json
from lenscope.train.recipes import RECIPES, get_recipe


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        recipe: str = typer.Option(..., "--recipe", "-r", help=f"One of: {', '.join(RECIPES)}."),
        steps: int | None = typer.Option(None, help="Override the number of steps."),
        corpus: list[Path] | None = typer.Option(
            None, help="Files/dirs (.py .txt .md .rst .jsonl .parquet); default: the stdlib."
        ),
        limit_bytes: int | None = typer.Option(None, help="Read at most this much corpus text."),
        vocab_size: int | None = typer.Option(None, help="BPE vocabulary size."),
        seed: int | None = typer.Option(None, help="Random seed (default: the recipe's)."),
        eval_every: int | None = typer.Option(None, help="Evaluate every N steps."),
        ckpt_every: int | None = typer.Option(None, help="Checkpoint every N steps."),
        run_dir: Path | None = typer.Option(None, help="Checkpoints/metrics dir."),
        out: Path | None = typer.Option(None, help="Where to write the final model artifact."),
        fresh: bool = typer.Option(False, help="Discard an existing checkpoint and start over."),
        progress: bool = typer.Option(True, help="Show a progress bar."),
        json: bool = JSON_OPTION,
    ) -> None:
        """Train a recipe; rerunning the same command resumes from the last checkpoint."""
        from lenscope.train.loop import train as run_training

        r = get_recipe(recipe).with_overrides(
            steps=steps,
            corpus=tuple(str(c) for c in corpus) if corpus else None,
            limit_bytes=limit_bytes,
            vocab_size=vocab_size,
            seed=seed,
            eval_every=eval_every,
            ckpt_every=ckpt_every,
        )
        res = run_training(r, run_dir=run_dir, out=out, fresh=fresh, progress=progress)
        if json:
            print_json(res)
