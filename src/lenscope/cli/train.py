"""`lenscope train --recipe NAME`: train one of lenscope's own subject models."""

from __future__ import annotations

from pathlib import Path

import typer

from lenscope.cli.common import DEVICE_OPTION, JSON_OPTION, print_json
from lenscope.errors import InputError
from lenscope.train.recipes import RECIPES, get_recipe


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        recipe: str = typer.Option(
            ..., "--recipe", "-r", help=f"One of: {', '.join(RECIPES)}, baby."
        ),
        sequence: str = typer.Option(
            "111101111011110", help="baby only: the bit sequence to train on."
        ),
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
        device: str = DEVICE_OPTION,
        json: bool = JSON_OPTION,
    ) -> None:
        """Train a recipe; rerunning the same command resumes from the last checkpoint."""
        from lenscope.train.loop import train as run_training

        if recipe == "baby":
            if device != "cpu":
                raise InputError("the baby GPT trains on the CPU (full batch, one thread)")
            _train_baby(sequence, steps, seed, out, json)
            return
        r = get_recipe(recipe).with_overrides(
            steps=steps,
            corpus=tuple(str(c) for c in corpus) if corpus else None,
            limit_bytes=limit_bytes,
            vocab_size=vocab_size,
            seed=seed,
            eval_every=eval_every,
            ckpt_every=ckpt_every,
        )
        res = run_training(
            r, run_dir=run_dir, out=out, fresh=fresh, progress=progress, device=device
        )
        if json:
            print_json(res)


def _train_baby(
    sequence: str, steps: int | None, seed: int | None, out: Path | None, json: bool
) -> None:
    """The seed's baby GPT: full-batch AdamW on every (3-bit context -> next bit) window."""
    from dataclasses import replace

    from lenscope.artifacts import lenscope_home
    from lenscope.cli.common import console
    from lenscope.markov import empirical_transitions
    from lenscope.model.load import save_model
    from lenscope.train.baby import BabySettings, train_baby

    s = BabySettings()
    s = replace(s, steps=s.steps if steps is None else steps, seed=s.seed if seed is None else seed)
    emp = empirical_transitions(sequence, s.vocab, s.context)  # validates the symbols
    run = train_baby([int(c) for c in sequence], s)
    dest = out or lenscope_home() / "models" / "baby"
    prov = {"recipe": "baby", "settings": s.__dict__, "sequence": sequence}
    save_model(run.model, dest, provenance=prov, eval={"train_loss": run.final_loss})
    if json:
        print_json({"path": dest, "final_loss": run.final_loss, "examples": emp.n_examples})
    else:
        console.print(
            f"baby GPT trained {s.steps} steps on {sequence!r} ({emp.n_examples} examples): "
            f"loss {run.losses[0]:.3f} -> {run.final_loss:.3f}; saved to {dest}"
        )
