"""`lenscope markov`: a tiny GPT as the finite Markov chain it is (Karpathy's baby GPT).

`lenscope markov --train 111101111011110 --steps 50` trains the seed's baby GPT and draws the
random-init and trained transition graphs; `lenscope markov MODEL` draws a loaded tiny model's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from lenscope.cli.common import DEVICE_OPTION, JSON_OPTION, console, err_console, print_json
from lenscope.errors import InputError

if TYPE_CHECKING:
    from lenscope.markov import EmpiricalTransitions, MarkovChain

DEFAULT_OUT = Path("lenscope-out/markov")


def register(app: typer.Typer) -> None:
    @app.command("markov")
    def markov(
        model: str | None = typer.Argument(
            None, help="a tiny model (name or path); omit to train the baby GPT"
        ),
        train: str | None = typer.Option(
            None,
            "--train",
            help="training sequence: digits ('111101111011110') or ids ('3 1 4 1'); "
            "with MODEL, only compared against",
        ),
        steps: int = typer.Option(50, "--steps", min=0, max=100_000, help="training steps"),
        seed: int = typer.Option(1337, "--seed", help="initialisation seed (the seed uses 1337)"),
        vocab: int | None = typer.Option(
            None, "--vocab", min=2, help="vocabulary size (default: from the sequence, >= 2)"
        ),
        context: int | None = typer.Option(
            None, "--context", min=1, help="context length (baby GPT default 3; MODEL: n_ctx)"
        ),
        include_short: bool = typer.Option(
            False, "--include-short", help="also the shorter contexts (14 states for V=2, C=3)"
        ),
        threshold: float = typer.Option(0.01, "--threshold", help="hide edges below this prob"),
        save: Path | None = typer.Option(None, "--save", help="save the trained baby GPT here"),
        out: Path = typer.Option(DEFAULT_OUT, "--out", help="where the graphs go"),
        device: str = typer.Option(
            "cpu",
            "--device",
            help="with MODEL: " + str(DEVICE_OPTION.help) + "; the baby GPT trains on the CPU",
        ),
        json: bool = JSON_OPTION,
    ) -> None:
        """Draw a tiny GPT's transition graph (graphviz circo), stationary and absorbing states."""
        if model is None:
            if device != "cpu":
                raise InputError("--device is for a loaded MODEL; the baby GPT trains on the CPU")
            result = _baby(
                train, steps, seed, vocab, context, include_short, threshold, out, save, json
            )
        else:
            result = _loaded(model, train, vocab, context, include_short, threshold, out, device)
        if json:
            print_json(result)
            return
        _print(result)


def parse_tokens(text: str) -> list[int]:
    """The --train sequence's token ids (see `lenscope.markov.states.parse_token_text`)."""
    from lenscope.markov.states import parse_token_text

    return parse_token_text(text, "--train 111101111011110")


def _baby(
    train: str | None,
    steps: int,
    seed: int,
    vocab: int | None,
    context: int | None,
    include_short: bool,
    threshold: float,
    out: Path,
    save: Path | None,
    as_json: bool,
) -> dict[str, Any]:
    from lenscope.markov import empirical_transitions, transition_matrix
    from lenscope.markov.states import check_size
    from lenscope.train.baby import SEED_SEQUENCE, BabySettings, one_thread, train_baby

    tokens = parse_tokens(train if train is not None else SEED_SEQUENCE)
    V = vocab if vocab is not None else max(2, max(tokens) + 1)
    C = context if context is not None else 3
    check_size(V, C)
    empirical = empirical_transitions(tokens, V, C, include_short)  # validates the symbols
    settings = BabySettings(vocab=V, context=C, steps=steps, seed=seed)
    with _bar(steps, as_json or steps < 200) as (bar, task):
        run = train_baby(tokens, settings, on_step=lambda s, _l: bar.update(task, completed=s))
    with one_thread():
        initial = transition_matrix(run.initial, V, C, include_short)
        trained = transition_matrix(run.model, V, C, include_short)
    files = _draw(initial, empirical, threshold, out / "init", "random init")
    files += _draw(trained, empirical, threshold, out / "trained", f"after {steps} steps")
    saved = None
    if save is not None:
        from lenscope.model.load import save_model

        prov = {"recipe": "baby", "sequence": tokens, "steps": steps, "seed": seed}
        saved = str(save_model(run.model, save, provenance=prov))
    return {
        "model": "baby-gpt",
        "V": V,
        "C": C,
        "sequence": tokens,
        "steps": steps,
        "seed": seed,
        "n_params": sum(p.numel() for p in run.model.parameters()),
        "loss_first": run.losses[0] if run.losses else None,
        "loss_final": run.final_loss,
        "initial": initial,
        "trained": trained,
        "empirical": empirical,
        "files": [str(f) for f in files],
        "saved": saved,
    }


def _loaded(
    name: str,
    train: str | None,
    vocab: int | None,
    context: int | None,
    include_short: bool,
    threshold: float,
    out: Path,
    device: str = "cpu",
) -> dict[str, Any]:
    from lenscope.markov import empirical_transitions, transition_matrix
    from lenscope.markov.states import check_size
    from lenscope.model.load import load_model
    from lenscope.train.baby import one_thread

    model = load_model(name, device=device)
    V, n_ctx = model.cfg.d_vocab, model.cfg.n_ctx
    if vocab is not None and vocab != V:
        raise InputError(f"{model.cfg.name} has a vocabulary of {V} tokens, not --vocab {vocab}")
    C = context if context is not None else n_ctx
    if n_ctx < C:
        raise InputError(f"--context {C} exceeds {model.cfg.name}'s context of {n_ctx} tokens")
    check_size(V, C)
    empirical = None
    if train is not None:
        empirical = empirical_transitions(parse_tokens(train), V, C, include_short)
    with one_thread():
        chain = transition_matrix(model, V, C, include_short)
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in model.cfg.name) or "model"
    files = _draw(chain, empirical, threshold, out / stem, model.cfg.name)
    return {
        "model": model.cfg.name,
        "V": V,
        "C": C,
        "note": None if n_ctx == C else f"states are the last {C} of {n_ctx} context tokens",
        "trained": chain,
        "empirical": empirical,
        "files": [str(f) for f in files],
    }


def _bar(total: int, disable: bool) -> Any:
    import contextlib

    @contextlib.contextmanager
    def cm() -> Any:
        with Progress(
            TextColumn("[bold]baby GPT"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
            disable=disable,
        ) as bar:
            yield bar, bar.add_task("train", total=total)

    return cm()


def _draw(
    chain: MarkovChain,
    empirical: EmpiricalTransitions | None,
    threshold: float,
    base: Path,
    title: str,
) -> list[Path]:
    from lenscope.markov import GraphvizError, render, to_dot
    from lenscope.markov.graph import MAX_DRAWN_STATES

    dot = to_dot(chain, empirical, threshold=threshold, name=title)
    base.parent.mkdir(parents=True, exist_ok=True)
    dot_path = base.parent / f"{base.name}.dot"
    dot_path.write_text(dot)
    if len(chain.states) > MAX_DRAWN_STATES:
        err_console.print(
            f"note: {len(chain.states)} states are too many to draw legibly (limit "
            f"{MAX_DRAWN_STATES}); wrote {dot_path} only (render it with `dot -Kcirco -Tsvg`)",
            highlight=False,
            soft_wrap=True,
        )
        return [dot_path]
    try:
        return [dot_path, *render(dot, base)]
    except GraphvizError as e:
        err_console.print(
            f"[yellow]warning:[/] {e}; wrote {dot_path} only", highlight=False, soft_wrap=True
        )
        return [dot_path]


def _print(result: dict[str, Any]) -> None:
    from lenscope.markov import compare

    chain = result["trained"]
    empirical = result["empirical"]
    head = (
        f"[bold]{result['model']}[/]: V={result['V']}, C={result['C']}, {len(chain.states)} states"
    )
    if "steps" in result:
        head += (
            f"; {result['n_params']:,} parameters, {result['steps']} steps (seed {result['seed']}), "
            f"loss {result['loss_first']:.3f} -> {result['loss_final']:.3f}"
            if result["loss_first"] is not None
            else f"; {result['n_params']:,} parameters, untrained"
        )
    console.print(head)
    if result.get("note"):
        console.print(f"note: {result['note']}")
    if "initial" in result:
        init = result["initial"]
        p = init.next_token_probs
        console.print(
            f"random init: next-token probabilities within {100 * abs(p - 1 / result['V']).max():.0f}"
            f" points of uniform ({100 / result['V']:.0f}%)"
        )
    if empirical is not None:
        table = compare(chain, empirical)
        console.print("states seen vs unseen in training (model vs data next-token %):")
        console.print(table.format_table(), highlight=False)
        tv = table.mean_total_variation
        if tv is not None:
            console.print(f"mean total variation on seen states: {tv:.3f}")
    _print_structure(chain)
    for f in result["files"]:
        console.print(f"wrote {f}", soft_wrap=True, highlight=False)


def _print_structure(chain: MarkovChain) -> None:
    for c in chain.classes:
        if c.kind == "transient":
            continue
        label = (
            "absorbing state" if c.kind == "absorbing" else f"recurrent class (period {c.period})"
        )
        console.print(f"{label}: {' '.join(c.states)}")
        if c.stationary is not None:
            pi = ", ".join(
                f"{s} {100 * p:.1f}%" for s, p in zip(c.states, c.stationary, strict=True)
            )
            console.print(f"  stationary distribution: {pi}", highlight=False)
    transient = [s for c in chain.classes if c.kind == "transient" for s in c.states]
    console.print(f"transient states: {' '.join(transient) if transient else 'none'}")
