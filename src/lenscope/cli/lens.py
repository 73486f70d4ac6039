"""`lenscope lens`: the logit lens (and tuned lens) of a prompt or a generation; tuned-lens training.

lenscope lens MODEL "prompt" [--generate N] [--watch " is" " are"] [--position P] [--json]
                             [--tuned [NAME|PATH]] [--precision fp32|bf16]
lenscope lens train-tuned MODEL [--corpus FILE ...] [--steps 400]
lenscope lens eval-tuned MODEL [--tuned NAME|PATH]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer import _click
from typer.core import TyperGroup

from lenscope.cli.common import (
    DEVICE_OPTION,
    EMPTY_PROMPT,
    JSON_OPTION,
    console,
    err_console,
    print_json,
    token_text,
)
from lenscope.errors import InputError
from lenscope.jsonable import to_jsonable


class _LensGroup(TyperGroup):
    """`lenscope lens MODEL PROMPT ...` runs `show`; a known subcommand name runs that instead.

    For `show`, a bare `--tuned` (last, before another option or before the prompt) means
    `--tuned auto`.
    """

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["show", *args]
        if args and args[0] == "show":
            args = _bare_tuned(args)
        return super().parse_args(ctx, args)


def _bare_tuned(args: list[str]) -> list[str]:
    """`--tuned` takes a lens name or path; it is bare (`auto`) when last, before another option,
    or before text that cannot be a lens (whitespace, not a path): `--tuned "for i in range("`."""
    out: list[str] = []
    for i, a in enumerate(args):
        out.append(a)
        if a == "--tuned" and (i + 1 == len(args) or not _lens_like(args[i + 1])):
            out.append("auto")
    return out


def _lens_like(text: str) -> bool:
    if text.startswith("-"):
        return False
    return not any(c.isspace() for c in text) or Path(text).expanduser().exists()


def _load(model: str, device: str) -> Any:
    from lenscope.model.load import load_model

    return load_model(model, device=device)


def _tuned(model: Any, tuned: str | None) -> Any:
    if tuned is None:
        return None
    from lenscope.lens.tuned import load_tuned_lens

    return load_tuned_lens(tuned, model)


def show(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Model name (see `lenscope models`) or checkpoint dir."),
    prompt: str = typer.Argument(..., help="The prompt."),
    generate: int = typer.Option(0, "--generate", "-n", help="Generate N tokens first."),
    watch: list[str] = typer.Option(
        [], "--watch", "-w", help='Tokens to track at every layer: --watch " is" " are".'
    ),
    position: int | None = typer.Option(
        None,
        "--position",
        "-p",
        help="Residual position (0-based, negative from the end) for layer predictions and "
        "watched tokens; default: the last prompt token.",
    ),
    k: int = typer.Option(10, "--k", "-k", help="Top tokens per layer."),
    temperature: float = typer.Option(0.0, help="0 = greedy; > 0 samples."),
    top_k: int | None = typer.Option(
        None, "--top-k", help="Sample from the top K only (needs --temperature > 0)."
    ),
    seed: int | None = typer.Option(None, help="Seed for sampling."),
    sublayers: bool = typer.Option(False, help="Also read the residual after each attention."),
    tuned: str | None = typer.Option(
        None,
        "--tuned",
        help="Use a tuned lens: alone (or 'auto'), the model's own (shipped, e.g. mini-tuned, "
        "or trained); else a name in assets/lenses or LENSCOPE_HOME/lenses, or a directory.",
    ),
    precision: str = typer.Option(
        "fp32",
        help="fp32 (exact) or bf16: project the layers in bfloat16, ~2x faster on CPUs with "
        "avx512_bf16, probabilities within ~0.03 (see docs/lens.md).",
    ),
    out: Path = typer.Option(Path("lenscope-out/lens"), help="Where pictures are written."),
    device: str = DEVICE_OPTION,
    json: bool = JSON_OPTION,
) -> None:
    """What every layer predicts: top tokens, ranks, entropy, KL; heatmaps and JSON."""
    from lenscope.lens.generation import lens_generation

    extra = list(ctx.args)
    if extra and not watch:
        raise InputError(
            f"unexpected argument(s) {extra}; to watch tokens write --watch ' is' ' are'"
        )
    watch = [*watch, *extra]
    if not prompt:
        raise InputError(EMPTY_PROMPT)
    if top_k is not None and temperature <= 0:
        raise InputError(
            "--top-k samples; it needs --temperature > 0 (at 0 generation is greedy: the top "
            "token every time)"
        )
    m = _load(model, device)
    lens = _tuned(m, tuned)
    with err_console.status("running the lens…"):
        gen = lens_generation(
            m,
            prompt,
            generate,
            temperature=temperature,
            top_k=top_k,
            seed=seed,
            watch=watch,
            position=position,
            k=k,
            sublayers=sublayers,
            tuned=lens,
            precision=precision,  # type: ignore[arg-type]  # checked by lens_generation
        )
        maps = gen.heatmaps()
        files = maps.save(out)
        files.append(maps.write_html(out / "lens.html"))
    if json:
        print_json({**to_jsonable(gen), "files": files})
        return
    _print_generation(gen, files)


def _print_generation(gen: Any, files: list[Path]) -> None:
    res = gen.lens
    prompt = "".join(res.tokens[: gen.n_prompt])
    how = f"{res.lens} lens" + (f" ({res.precision})" if res.precision != "fp32" else "")
    console.print(f"[bold]{escape(res.model)}[/] · {how} · {len(res.tokens)} tokens")
    text = escape(prompt) + (f"[bold green]{escape(''.join(gen.generated))}[/]")
    console.print(text, highlight=False)
    for note in gen.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    preds = gen.layer_predictions
    after = res.tokens[gen.position]
    t = Table(title=f"top tokens after {token_text(after)} (position {gen.position})")
    t.add_column("layer")
    shown = min(5, len(preds[0].tokens))
    for i in range(shown):
        t.add_column(f"#{i + 1}")
    for p in preds:
        cells = zip(p.tokens[:shown], p.probs[:shown], strict=True)
        t.add_row(p.boundary, *[f"{token_text(s)} {pr:.1%}" for s, pr in cells])
    console.print(t)
    if gen.generated:
        cols = gen.generated[:16]
        t = Table(title="rank of each generated token at each layer (Ecco's rankings)")
        t.add_column("layer")
        for s in cols:
            t.add_column(token_text(s), justify="right")
        for b, row in zip(res.boundaries, gen.rankings, strict=True):
            t.add_row(b, *[str(r) for r in row[: len(cols)]])
        console.print(t)
    w = gen.rankings_watch
    if w.tokens:
        t = Table(title=f"watched tokens after {token_text(w.after)} (position {w.position})")
        t.add_column("layer")
        for s in w.tokens:
            t.add_column(token_text(s), justify="right")
        for b, ranks, probs in zip(w.boundaries, w.rank, w.prob, strict=True):
            t.add_row(b, *[f"{r} ({p:.1%})" for r, p in zip(ranks, probs, strict=True)])
        console.print(t)
    console.print("wrote " + ", ".join(str(f) for f in files), highlight=False)


def _corpus(m: Any, corpus: list[str], limit_bytes: int | None, quiet: bool) -> Any:
    from lenscope.data import token_stream

    log = err_console.print if quiet else console.print
    return token_stream(m, corpus, limit_bytes=limit_bytes, progress=not quiet, log=log)


def _eval_table(ev: Any) -> Table:
    t = Table(title=f"{ev.model}: logit vs tuned lens on {ev.tokens:,} held-out tokens (nats)")
    for c in ("layer", "CE logit", "CE tuned", "entropy logit", "entropy tuned", "KL logit"):
        t.add_column(c, justify="right")
    t.add_column("KL tuned", justify="right")
    tuned = ev.tuned
    for i, b in enumerate(ev.boundaries):
        kl_t = "—" if tuned is None else f"{tuned.kl[i]:.3f}"
        if tuned is not None and i < len(ev.boundaries) - 1 and tuned.kl[i] < ev.logit.kl[i]:
            kl_t = f"[green]{kl_t}[/]"
        t.add_row(
            b,
            f"{ev.logit.ce[i]:.3f}",
            "—" if tuned is None else f"{tuned.ce[i]:.3f}",
            f"{ev.logit.entropy[i]:.3f}",
            "—" if tuned is None else f"{tuned.entropy[i]:.3f}",
            f"{ev.logit.kl[i]:.3f}",
            kl_t,
        )
    return t


# options `train-tuned` and `eval-tuned` share
CORPUS_OPTION = typer.Option(
    [], "--corpus", help="Text files/dirs (default: the stdlib token dataset)."
)
LIMIT_BYTES_OPTION = typer.Option(None, help="Read at most this much corpus text.")
CTX_OPTION = typer.Option(None, "--ctx", help="Window length (default ≤ 128).")
TUNED_OUT_OPTION = typer.Option(Path("lenscope-out/lens-tuned"), help="Where the plot goes.")


def train_tuned(
    model: str = typer.Argument(..., help="Model name or checkpoint dir."),
    corpus: list[str] = CORPUS_OPTION,
    limit_bytes: int | None = LIMIT_BYTES_OPTION,
    steps: int = typer.Option(400, help="Optimizer steps."),
    batch_size: int = typer.Option(8, help="Windows per step."),
    ctx_len: int | None = CTX_OPTION,
    lr: float = typer.Option(2e-3, help="Adam learning rate."),
    seed: int = typer.Option(0, help="Seed of the batch order."),
    dest: Path | None = typer.Option(
        None, "--dest", help="Artifact dir (default LENSCOPE_HOME/lenses/<model>-tuned)."
    ),
    eval_batches: int = typer.Option(16, help="Held-out batches for the evaluation."),
    out: Path = TUNED_OUT_OPTION,
    device: str = DEVICE_OPTION,
    json: bool = JSON_OPTION,
) -> None:
    """Train a tuned lens (one affine translator per layer, loss KL(final ‖ lens)) and save it."""
    from lenscope.lens.evaluate import evaluate_lenses, plot_lens_eval
    from lenscope.lens.train import train_tuned_lens
    from lenscope.lens.tuned import default_tuned_path, save_tuned_lens

    m = _load(model, device)
    data = _corpus(m, corpus, limit_bytes, json)
    bar = Progress(
        TextColumn("training tuned lens"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} · KL {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
        console=err_console if json else console,
    )
    with bar:
        task = bar.add_task("train", total=steps, loss=float("nan"))
        lens, info = train_tuned_lens(
            m,
            data.train,
            steps=steps,
            batch_size=batch_size,
            ctx=ctx_len,
            lr=lr,
            seed=seed,
            progress=lambda s, loss: bar.update(task, completed=s, loss=loss),
        )
    ev = evaluate_lenses(
        m, data.val, lens, batch_size=batch_size, ctx=ctx_len, max_batches=eval_batches
    )
    path = save_tuned_lens(
        lens,
        dest or default_tuned_path(m),
        m.cfg.name,
        provenance={
            "data": data.source,
            "steps": steps,
            "batch_size": batch_size,
            "ctx": info.ctx,
            "lr": lr,
            "seed": seed,
        },
        data={"eval": to_jsonable(ev), "train_seconds": info.seconds},
    )
    files = plot_lens_eval(ev, out)
    if json:
        info.losses = info.losses[-10:]
        print_json({"artifact": path, "training": info, "eval": ev, "files": files})
        return
    console.print(_eval_table(ev))
    console.print(
        f"saved the tuned lens to {path} ({info.seconds:.0f} s); use it with "
        f"`lenscope lens {model} PROMPT --tuned {path}`",
        highlight=False,
    )
    console.print("wrote " + ", ".join(str(f) for f in files), highlight=False)


def eval_tuned(
    model: str = typer.Argument(..., help="Model name or checkpoint dir."),
    tuned: str = typer.Option(
        "auto", help="Tuned lens: a directory, a name (mini-tuned), or 'auto' (the model's own)."
    ),
    corpus: list[str] = CORPUS_OPTION,
    limit_bytes: int | None = LIMIT_BYTES_OPTION,
    batches: int = typer.Option(16, help="Held-out batches."),
    batch_size: int = typer.Option(8, help="Windows per batch."),
    ctx_len: int | None = CTX_OPTION,
    out: Path = TUNED_OUT_OPTION,
    device: str = DEVICE_OPTION,
    json: bool = JSON_OPTION,
) -> None:
    """Per-layer cross-entropy, entropy and KL of the logit lens vs the tuned lens."""
    from lenscope.lens.evaluate import evaluate_lenses, plot_lens_eval

    m = _load(model, device)
    lens = _tuned(m, tuned)
    data = _corpus(m, corpus, limit_bytes, json)
    with err_console.status("evaluating…"):
        ev = evaluate_lenses(
            m, data.val, lens, batch_size=batch_size, ctx=ctx_len, max_batches=batches
        )
    files = plot_lens_eval(ev, out)
    if json:
        print_json({"eval": ev, "tuned_beats_logit": ev.tuned_beats_logit(), "files": files})
        return
    console.print(_eval_table(ev))
    console.print("wrote " + ", ".join(str(f) for f in files), highlight=False)


def register(app: typer.Typer) -> None:
    sub = typer.Typer(
        cls=_LensGroup,
        no_args_is_help=True,
        help='Logit lens and tuned lens. `lenscope lens MODEL "prompt" [--generate N] '
        '[--watch " is" " are"]` shows what every layer predicts.',
    )
    sub.command("show", context_settings={"allow_extra_args": True})(show)
    sub.command("train-tuned")(train_tuned)
    sub.command("eval-tuned")(eval_tuned)
    app.add_typer(sub, name="lens")
