"""`lenscope discover MODEL --task NAME|PATH --method eap-ig --ablation resample`: find the circuit
that does a task, print it with its faithfulness, and plot the faithfulness curves.

Several methods (`--method eap,eap-ig,patch`) run on the same rows and share one plot.
`lenscope discover MODEL --list-tasks` lists the shipped tasks written for the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lenscope.cli.common import DEVICE_OPTION, JSON_OPTION, console, err_console, print_json
from lenscope.errors import InputError

if TYPE_CHECKING:
    from lenscope.discover.result import DiscoverResult
    from lenscope.model.transformer import HookedTransformer

DEFAULT_OUT = Path("lenscope-out/discover")


def register(app: typer.Typer) -> None:
    @app.command(
        "discover",
        help=(
            "Find the circuit that does a task (EAP, EAP-IG, ACDC or exact patching of every "
            "edge), with its faithfulness under the chosen ablation; writes the faithfulness plot."
        ),
    )
    def discover_cmd(
        model_name: str = typer.Argument(..., metavar="MODEL", help="a model name or path"),
        task: str | None = typer.Option(
            None, "--task", help="a shipped task's name (see --list-tasks) or a JSONL file"
        ),
        method: str = typer.Option(
            "eap-ig",
            "--method",
            help="patch | eap | eap-ig | eap-ig-act | acdc; several comma-separated share a plot",
        ),
        ablation: str = typer.Option(
            "resample", "--ablation", help="zero | mean | mean-pos | resample"
        ),
        steps: int = typer.Option(5, "--steps", help="EAP-IG integration steps"),
        tau: float | None = typer.Option(None, "--tau", help="ACDC's threshold (default 0.1)"),
        top_n: int | None = typer.Option(
            None, "--top-n", help="edges in the circuit (default: the fewest reaching 90%)"
        ),
        selection: str = typer.Option("top-n", "--selection", help="top-n | threshold | greedy"),
        threshold: float | None = typer.Option(
            None, "--threshold", help="with --selection threshold: the smallest |score| kept"
        ),
        metric: str | None = typer.Option(
            None, "--metric", help="logit_diff | prob | kl (default: the task's)"
        ),
        rows: int | None = typer.Option(None, "--rows", help="use only the first N rows"),
        list_tasks: bool = typer.Option(False, "--list-tasks", help="list the shipped tasks"),
        show: int = typer.Option(20, "--show", min=1, max=1000, help="circuit edges to print"),
        out: Path | None = typer.Option(
            None, "--out", help="where the plot goes (default lenscope-out/discover/MODEL-TASK)"
        ),
        device: str = DEVICE_OPTION,
        json: bool = JSON_OPTION,
    ) -> None:
        from lenscope.device import resolve_device
        from lenscope.discover.api import check_method
        from lenscope.discover.tasks import METRICS
        from lenscope.model.load import load_model

        methods = [check_method(m.strip()) for m in method.split(",") if m.strip()]
        if not methods:
            raise InputError("--method is empty; give e.g. eap-ig")
        if metric is not None and metric not in METRICS:
            raise InputError(f"--metric {metric!r} is not one of {', '.join(METRICS)}")
        dev = resolve_device(device)
        model = load_model(model_name, device=dev)
        if list_tasks:
            _list(model.cfg.name, json)
            return
        if task is None:
            raise InputError("give --task NAME or a JSONL file (--list-tasks lists the shipped)")
        _run(
            model,
            task,
            methods,
            ablation,
            steps,
            tau,
            top_n,
            selection,
            threshold,
            metric,
            rows,
            show,
            out,
            json,
        )


def _list(model: str, as_json: bool) -> None:
    from lenscope.discover.tasks import list_tasks

    tasks = list_tasks(model)
    if as_json:
        print_json(tasks)
        return
    if not tasks:
        console.print(f"no shipped task is written for {model}; bring a JSONL file with --task")
        return
    t = Table(title=f"tasks for {model}")
    for c in ("name", "rows", "accuracy", "mean logit diff", "description"):
        t.add_column(c, overflow="fold")
    for x in tasks:
        acc = "-" if x.accuracy is None else f"{x.accuracy:.2f}"
        ld = "-" if x.mean_logit_diff is None else f"{x.mean_logit_diff:.2f}"
        t.add_row(x.name, str(x.n_rows), acc, ld, x.description)
    console.print(t)


def _run(
    model: HookedTransformer,
    task_name: str,
    methods: Sequence[str],
    ablation: str,
    steps: int,
    tau: float | None,
    top_n: int | None,
    selection: str,
    threshold: float | None,
    metric: str | None,
    rows: int | None,
    show: int,
    out: Path | None,
    as_json: bool,
) -> None:
    from lenscope.discover.api import discover
    from lenscope.discover.plots import save_faithfulness
    from lenscope.discover.tasks import Metric, load_task

    task = load_task(task_name, model, cast("Metric | None", metric))
    results = []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as bar:
        ids: dict[str, object] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in ids:
                ids[stage] = bar.add_task(stage, total=total)
            bar.update(ids[stage], completed=done, total=total)  # type: ignore[arg-type]

        for m in methods:
            ids.clear()
            for t in list(bar.tasks):
                bar.remove_task(t.id)
            results.append(
                discover(
                    model,
                    task,
                    m,
                    ablation,
                    steps=steps,
                    tau=tau if m == "acdc" else None,
                    top_n=top_n,
                    selection=selection,
                    threshold=threshold,
                    metric=task.metric,
                    max_rows=rows,
                    progress=progress,
                )
            )
    dest = out or DEFAULT_OUT / f"{model.cfg.name}-{task.name}"
    files = save_faithfulness(results, dest, "faithfulness")
    if as_json:
        print_json({"results": results, "files": [str(f) for f in files]})
        return
    for r in results:
        _print(r, show)
    for f in files:
        console.print(f"wrote {f}", soft_wrap=True, highlight=False)


def _print(r: DiscoverResult, show: int) -> None:
    f = r.faithfulness
    extra = f", steps {r.steps}" if r.steps else (f", tau {r.tau:g}" if r.tau is not None else "")
    console.print(
        f"[bold]{r.model} · {r.task}[/] ({r.n_rows} rows): method [bold]{r.method}[/]{extra}, "
        f"ablation [bold]{r.ablation}[/], metric {r.metric} (full model {f.full_value:.3f}, "
        f"everything ablated {f.empty_value:.3f}); scored {r.n_edges} edges in {r.seconds:.1f} s",
        highlight=False,
    )
    n80 = "never" if f.n80 is None else str(f.n80)
    n90 = "never" if f.n90 is None else str(f.n90)
    console.print(
        f"circuit: {len(r.circuit)} edges ({r.selection}); alone it does "
        f"{_pct(f.circuit_fraction)} of the full model, with it knocked out "
        f"{_pct(f.completeness)} "
        f"remains; curve area {f.area:.3f}, 80% at {n80} edges, 90% at {n90}",
        highlight=False,
    )
    t = Table(title=f"{r.method}: circuit edges (best |score| first)")
    for c in ("edge", "receiver", "score"):
        t.add_column(c, justify="right" if c == "score" else "left")
    kept = [e for e in r.edges if e.in_circuit]
    for e in kept[:show]:
        t.add_row(f"{e.source} → {e.target}", e.receiver or "", f"{e.score:+.4f}")
    console.print(t)
    if len(kept) > show:
        console.print(f"... and {len(kept) - show} more (--show N, or --json for all)")


def _pct(x: float) -> str:
    """A fraction as a percentage, without a negative zero."""
    return f"{x:.0%}" if round(x * 100) != 0 else "0%"
