"""`lenscope sae bench NAME...`: the dictionary bench over one or many SAEs / transcoders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.table import Table

from lenscope.cli.common import DEVICE_OPTION, JSON_OPTION, console, err_console, print_json
from lenscope.errors import InputError


def bench(
    names: list[str] = typer.Argument(
        None, help="SAE names or directories (transcoder directories too)."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Default: the model they were trained on."
    ),
    tokens: int = typer.Option(16384, "--tokens", help="Held-out tokens for the core metrics."),
    probe_tokens: int = typer.Option(
        16384, "--probe-tokens", help="Labelled code tokens (0: no probing)."
    ),
    ks: list[int] = typer.Option([1, 2, 5], "--k", help="Latents per sparse probe (repeat)."),
    ctx: int | None = typer.Option(None, "--ctx", help="Window length (default n_ctx)."),
    data: list[str] | None = typer.Option(None, "--data", help="Token dataset or text files."),
    out: Path = typer.Option(Path("lenscope-out/sae-bench"), "--out", help="Results and plots."),
    fresh: bool = typer.Option(False, "--fresh", help="Recompute results already in --out."),
    force: bool = typer.Option(False, "--force", help="Allow a model with another fingerprint."),
    device: str = DEVICE_OPTION,
    json: bool = JSON_OPTION,
) -> None:
    """Core metrics (SAEBench's definitions) and sparse probing on code labels, per dictionary;
    a comparison table and frontier plots (each metric against L0). Results are kept in --out:
    a killed run resumes where it stopped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from lenscope.bench import BenchConfig, load_dictionary, plot_frontiers, run_bench
    from lenscope.data import token_stream
    from lenscope.device import resolve_device
    from lenscope.model import load_model

    if not names:
        raise InputError("give at least one SAE or transcoder to bench")
    dev = resolve_device(device)
    loaded = [(n, load_dictionary(n, device=dev)) for n in names]
    name = model or _model_name(loaded)
    m = load_model(name, device=dev)
    log = (
        (lambda s: err_console.print(s, highlight=False))
        if json
        else (lambda s: console.print(s, highlight=False))
    )
    streams = token_stream(m, data, progress=not json, log=log)
    cfg = BenchConfig(
        core_tokens=tokens,
        probe_tokens=max(probe_tokens, 1),
        ctx=ctx,
        ks=tuple(ks),
        probing=probe_tokens > 0,
    )
    bar = Progress(
        TextColumn("[bold]sae bench[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
    )

    def progress(n: str, steps: int) -> Callable[[], None]:
        task = bar.add_task(n, total=steps)
        return lambda: bar.advance(task)

    with bar:
        res = run_bench(
            m, loaded, streams, out, cfg, strict=not force, fresh=fresh, progress=progress, log=log
        )
    res.plots = plot_frontiers(res.dictionaries, out)
    if json:
        print_json(res)
        return
    _print(res)


def _model_name(loaded: list[tuple[str, object]]) -> str:
    from lenscope.sae.dictionary import Dictionary

    names = {Dictionary.of(d).model_name for _, d in loaded} - {""}
    if len(names) != 1:
        raise InputError(
            "the dictionaries do not name one model they were trained on; pass --model"
        )
    return names.pop()


def _print(res: object) -> None:
    """Metrics down, dictionaries across (the bench has more metrics than a line has room)."""
    from lenscope.bench import METRICS, BenchResult, row

    assert isinstance(res, BenchResult)
    t = Table(title=f"dictionary bench on {res.model} ({res.out})")
    t.add_column("metric", style="bold")
    for d in res.dictionaries:
        t.add_column(d.name, overflow="fold")
    rows = [row(d) for d in res.dictionaries]
    t.add_row("kind / architecture", *(f"{d.kind} {d.architecture}" for d in res.dictionaries))
    t.add_row("latents / k", *(f"{d.d_sae} / {d.k or '-'}" for d in res.dictionaries))
    t.add_row("L0", *(f"{d.core.l0:.1f}" for d in res.dictionaries))
    for key, title, better in METRICS:
        t.add_row(f"{title} ({better} is better)", *(_fmt(r.get(key)) for r in rows))
    probe = sorted({k for r in rows for k in r if k.startswith("probe_")})
    for p in probe:
        what = "full activation" if p == "probe_full" else f"top {p[len('probe_k') :]} latents"
        t.add_row(f"probe accuracy, {what}", *(_fmt(r.get(p)) for r in rows))
    for key, title in (
        ("absorption", "keyword absorption fraction (lower is better)"),
        ("full_absorption", "keyword full-absorption rate (lower is better)"),
        ("tpp", "TPP on token kinds (higher is better)"),
    ):
        if any(key in r for r in rows):
            t.add_row(title, *(_fmt(r.get(key)) for r in rows))
    console.print(t)
    if res.reused:
        console.print(f"reused earlier results of {', '.join(res.reused)}", highlight=False)
    for p in res.plots:
        if p.endswith(".png"):
            console.print(p, highlight=False)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or v != v else f"{v:.3f}"
