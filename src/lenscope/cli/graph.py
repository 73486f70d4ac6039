"""`lenscope graph`: the attribution graph of a prompt, its scores and strongest paths.

lenscope graph MODEL "prompt" [--transcoders NAME_OR_PATH] [-t A -d B] [--json] [--out FILE]
               [--max-feature-nodes N] [--node-threshold X] [--edge-threshold Y] [--device]
"""

from __future__ import annotations

import json as jsonlib
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn

from lenscope.cli.common import (
    DEVICE_OPTION,
    EMPTY_PROMPT,
    JSON_OPTION,
    console,
    err_console,
    print_json,
)
from lenscope.errors import InputError


def register(app: typer.Typer) -> None:
    @app.command()
    def graph(
        model_name: str = typer.Argument(..., metavar="MODEL", help="Model name or checkpoint."),
        prompt: str = typer.Argument(..., help="The prompt (BOS is prepended as the model does)."),
        transcoders: str | None = typer.Option(
            None, "--transcoders", help="Transcoder set name or folder (default: the model's)."
        ),
        target: list[str] = typer.Option([], "--target", "-t", help="Target token(s); #ID."),
        distractor: list[str] = typer.Option([], "--distractor", "-d", help="Distractor(s)."),
        out: Path | None = typer.Option(None, "--out", help="Write Neuronpedia graph JSON here."),
        max_feature_nodes: int = typer.Option(4096, "--max-feature-nodes", help="Feature rows."),
        node_threshold: float = typer.Option(0.8, "--node-threshold", help="In (0, 1]."),
        edge_threshold: float = typer.Option(0.98, "--edge-threshold", help="In (0, 1]."),
        batch_size: int = typer.Option(64, "--batch-size", help="Rows per backward pass."),
        paths: int = typer.Option(3, "--paths", help="Strongest paths per target."),
        device: str = DEVICE_OPTION,
        json: bool = JSON_OPTION,
    ) -> None:
        """Build the attribution graph of the prompt over transcoders; print scores and the
        strongest paths into each target."""
        from lenscope.attribution.questions import Logit, LogitDiff
        from lenscope.cli.why import _spec
        from lenscope.device import resolve_device
        from lenscope.graphs.api import attribution_graph, summarize
        from lenscope.graphs.build import GraphOptions
        from lenscope.graphs.neuronpedia import to_neuronpedia
        from lenscope.graphs.sources import load_graph_transcoders
        from lenscope.graphs.targets import QuestionSpec, check_threshold
        from lenscope.model.load import load_model

        if not prompt:
            raise InputError(EMPTY_PROMPT)
        check_threshold(node_threshold, "--node-threshold")
        check_threshold(edge_threshold, "--edge-threshold")
        if distractor and not target:
            raise InputError("--distractor needs --target (the tokens it is compared with)")
        dev = resolve_device(device)
        model = load_model(model_name, device=dev)
        dics = load_graph_transcoders(model, transcoders, dev)
        question: QuestionSpec | None = None
        if target and distractor:
            question = LogitDiff(
                target=[_spec(t) for t in target], distractor=[_spec(d) for d in distractor]
            )
        elif target:
            if len(target) > 1:
                raise InputError("give one --target, or --target and --distractor token sets")
            question = Logit(token=_spec(target[0]))
        opts = GraphOptions(max_feature_nodes=max_feature_nodes, batch_size=batch_size)
        with Progress(
            TextColumn("[bold]graph rows"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            console=err_console,
            transient=True,
            disable=json or not err_console.is_terminal,
        ) as bar:
            task = bar.add_task("rows", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            run = attribution_graph(
                model,
                prompt,
                dics,
                question=question,
                options=opts,
                node_threshold=node_threshold,
                edge_threshold=edge_threshold,
                progress=progress,
            )
        summary = summarize(run, paths)
        if out is not None:
            doc = to_neuronpedia(
                run.graph, run.pruned, prompt=prompt, node_threshold=node_threshold, heads=run.heads
            )
            doc["scores"] = run.scores.to_json()
            out.write_text(jsonlib.dumps(doc), "utf-8")
        if json:
            print_json(summary)
            return
        console.print(
            f"[bold]{escape(summary.model)}[/]: {len(summary.prompt)} tokens, targets "
            f"{escape(', '.join(summary.targets))}",
            highlight=False,
        )
        console.print(
            f"replacement score {summary.scores.replacement:.3f}   completeness "
            f"{summary.scores.completeness:.3f}   {summary.features_in_graph} of "
            f"{summary.active_features} active features, {summary.nodes_kept} nodes and "
            f"{summary.edges_kept} edges kept, {summary.backward_passes} backward passes",
            highlight=False,
        )
        for p in summary.paths:
            chain = " → ".join(escape(s.label) for s in p.steps)
            console.print(f"  {p.strength:.3f}  {chain}", highlight=False, soft_wrap=True)
        if out is not None:
            console.print(f"wrote {escape(str(out))}", highlight=False)
