"""`lenscope circuits MODEL` (heads read from weights) and `lenscope circuits induction`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

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
from lenscope.nodes import head_node_id

if TYPE_CHECKING:
    import torch

    from lenscope.circuits.report import CircuitReport
    from lenscope.model.transformer import HookedTransformer

INDUCTION = "induction"
DEFAULT_OUT = Path("lenscope-out/circuits")
PICTURES = ("composition", "attention", "tables")  # what `lenscope circuits MODEL` may write


def register(app: typer.Typer) -> None:
    @app.command(
        "circuits",
        help=(
            "Read a model's circuits from its weights: `lenscope circuits MODEL` finds induction "
            "heads, the previous-token heads feeding them (K-composition), copying scores and "
            "OV/QK tables; `lenscope circuits induction` plots the phase change over training."
        ),
    )
    def circuits(
        target: str = typer.Argument(..., help="a model name or path, or 'induction'"),
        out: Path | None = typer.Option(
            None,
            "--out",
            help="where pictures go (default lenscope-out/circuits/MODEL, "
            "lenscope-out/circuits-induction)",
        ),
        token: list[str] = typer.Option([], "--token", help="table rows for this token (repeat)"),
        k: int = typer.Option(5, "--k", min=1, max=50, help="entries per table row"),
        rows: int = typer.Option(6, "--rows", min=1, max=50, help="table rows when no --token"),
        prompt: str | None = typer.Option(
            None, "--prompt", help="also expand the logits on this prompt into paths"
        ),
        recipes: str = typer.Option(
            "attn1,attn2", "--recipes", help="for 'induction': comma-separated recipes"
        ),
        runs: Path | None = typer.Option(
            None, "--runs", help="for 'induction': runs folder (default LENSCOPE_HOME/runs)"
        ),
        data: Path | None = typer.Option(
            None,
            "--data",
            help="for 'induction': token dataset dir or .npy of ids for the ICL score "
            "(default: the recipe's own dataset)",
        ),
        device: str = DEVICE_OPTION,
        json: bool = JSON_OPTION,
    ) -> None:
        if target == INDUCTION and not Path(target).exists():
            names = [r.strip() for r in recipes.split(",") if r.strip()]
            if not names:
                raise InputError("--recipes is empty; give e.g. attn1,attn2")
            _induction(names, runs, data, out or Path("lenscope-out/circuits-induction"), json)
            return
        if prompt == "":
            raise InputError(EMPTY_PROMPT)
        dest = out or DEFAULT_OUT / _folder_name(target)
        _model_report(target, dest, token, k, rows, prompt, json, device)


def _model_report(
    target: str,
    out: Path,
    token_texts: list[str],
    k: int,
    rows: int,
    prompt: str | None,
    as_json: bool,
    device: str = "cpu",
) -> None:
    from lenscope.circuits.plots import (
        attention_patterns,
        composition_heatmap,
        save_figure,
        token_table_figure,
    )
    from lenscope.circuits.report import circuit_report
    from lenscope.model.load import load_model

    model = load_model(target, device=device)
    tokens = [_token_id(model, t) for t in token_texts] or None
    prompt_ids = None
    if prompt is not None:
        prompt_ids = model.to_tokens(prompt)[0] if model.tokenizer else _ids(prompt)
        if prompt_ids.numel() == 0:
            raise InputError(EMPTY_PROMPT)
    rep = circuit_report(model, tokens, k=k, n_rows=rows, prompt=prompt_ids)
    files: list[Path] = []
    title = f"{rep.model}: composition scores"
    if rep.composition:
        files += save_figure(composition_heatmap(rep.composition, title), out, "composition")
    if rep.patterns.numel():
        fig = attention_patterns(rep.patterns, rep.pattern_seq_len, f"{rep.model}: attention")
        files += save_figure(fig, out, "attention")
    files += save_figure(token_table_figure(rep.tables, k), out, "tables")
    removed = _remove_stale(out, files)
    if as_json:
        print_json(
            rep.to_json() | {"files": [str(f) for f in files], "removed": [str(f) for f in removed]}
        )
        return
    _print_report(rep)
    for f in files:
        console.print(f"wrote {f}", soft_wrap=True, highlight=False)
    for f in removed:
        console.print(f"removed {f} (left by an earlier run; not drawn for this model)")


def _folder_name(target: str) -> str:
    """attn1 -> attn1; a checkpoint directory -> its name."""
    p = Path(target)
    return p.resolve().name if p.exists() else p.name or target


def _remove_stale(out: Path, written: list[Path]) -> list[Path]:
    """Pictures of ours in `out` that this run did not write (another model's composition
    heatmap, say): removed, so that the folder holds one model's pictures."""
    keep = {p.resolve() for p in written}
    stale = []
    for stem in PICTURES:
        for ext in ("png", "svg"):
            p = out / f"{stem}.{ext}"
            if p.is_file() and p.resolve() not in keep:
                p.unlink()
                stale.append(p)
    return stale


def _print_report(rep: CircuitReport) -> None:
    ind = rep.induction
    console.print(f"[bold]{rep.model}[/]: {rep.summary}")
    console.print(f"LayerNorm: {rep.layernorm}", highlight=False)
    for n in rep.notes:
        console.print(f"note: {n}")
    s = ind.scores
    console.print(
        f"repeated random tokens ({s.n_seqs} x 2 x {s.seq_len}): loss first half "
        f"{s.loss_first_half:.2f}, repeated half {s.loss_repeat_half:.2f} nats"
    )
    if ind.found:
        heads = ", ".join(f"{h} ({v:.2f})" for h, v in ind.induction_heads)
        console.print(f"[bold green]induction heads[/]: {heads}")
    else:
        best, v = s.best("induction")
        console.print(
            f"[bold]no induction head[/] (best {best} at {v:.2f}, threshold "
            f"{ind.thresholds['induction']:.2f})"
        )
    prev = ", ".join(f"{h} ({v:.2f})" for h, v in ind.previous_token_heads) or "none"
    console.print(f"previous-token heads: {prev}")
    for p in ind.pairs:
        base = ind.k_composition.baseline if ind.k_composition else float("nan")
        console.print(
            f"  {p.previous_token_head} (prev-token {p.previous_token_score:.2f}) -> "
            f"{p.induction_head} (induction {p.induction_score:.2f}): K-composition "
            f"{p.k_composition:.3f} (random ≈ {base:.3f})"
        )
    t = Table(title="per head")
    for c in ("head", "prev-token", "duplicate", "induction", "copying", "best offset"):
        t.add_column(c, justify="right")
    offsets = {o.head: o.preferred_offset for o in rep.offsets}
    for lay, row in enumerate(s.induction):
        for h in range(len(row)):
            hid = head_node_id(lay, h)
            t.add_row(
                hid,
                f"{s.previous_token[lay][h]:.2f}",
                f"{s.duplicate_token[lay][h]:.2f}",
                f"{s.induction[lay][h]:.2f}",
                f"{rep.copying.of(lay, h):+.2f}",
                str(offsets.get(hid, "-")),
            )
    console.print(t)
    if rep.offsets:
        console.print(
            "best offset: where a head's expected attention on random tokens peaks, from the "
            "weights (q - k; position 0, the BOS sink, left out); after layer 0 the direct "
            "path only",
            highlight=False,
        )
    for comp in rep.composition:
        top = comp.pairs()[:3]
        txt = ", ".join(f"{p.source}->{p.target} {p.score:.3f}" for p in top)
        console.print(f"{comp.mode}-composition top: {txt} (random ≈ {comp.baseline:.3f})")
    for tab in rep.tables:
        console.print(f"[bold]{tab.head or ''} {tab.kind.upper()}[/] {tab.description}")
        for r in tab.rows:
            tops = ", ".join(f"{x.text!r} {x.score:+.2f}" for x in r.top)
            console.print(f"  {r.text!r}: {tops}", highlight=False)
    if rep.skip_trigrams:
        console.print("[bold]skip-trigrams[/] (src … dest → out, score = qk x ov)")
        for tg in rep.skip_trigrams:
            console.print(f"  {tg.head} {tg.text}  {tg.score:.2f}", highlight=False)
    if rep.paths is not None:
        console.print(
            f"path expansion of the last position's top logit, {token_text(rep.path_token)} "
            f"(id {rep.path_token_id}; sum error {rep.paths.max_abs_error:.1e}):",
            highlight=False,
        )
        for name, v in rep.path_top:
            console.print(f"  {name:>14} {v:+.3f}")


def _token_id(model: HookedTransformer, text: str) -> int:
    if model.tokenizer is None:
        return int(_ids(text)[0])
    return model.to_single_token(text)


def _ids(text: str) -> torch.Tensor:
    import torch

    try:
        return torch.tensor([int(x) for x in text.replace(",", " ").split()], dtype=torch.long)
    except ValueError:
        raise InputError(
            f"the model has no tokenizer; give token ids like '3 1 4', not {text!r}"
        ) from None


def _induction(
    recipes: list[str], runs: Path | None, data: Path | None, out: Path, as_json: bool
) -> None:
    from lenscope.circuits.phase import load_eval_tokens, phase_change
    from lenscope.circuits.plots import phase_change_figure, save_figure

    tokens = None if data is None else load_eval_tokens(data)
    if not as_json:  # the progress bar only shows on a terminal: say what is coming
        err_console.print(_induction_plan(recipes, runs), highlight=False, soft_wrap=True)

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} snapshots"),
        console=err_console,
        transient=True,
        disable=as_json or not err_console.is_terminal,
    ) as bar:
        tasks: dict[str, object] = {}

        def progress(recipe: str, done: int, total: int) -> None:
            if recipe not in tasks:
                tasks[recipe] = bar.add_task(recipe, total=total)
            bar.update(tasks[recipe], completed=done)  # type: ignore[arg-type]

        curves, missing = phase_change(
            recipes, runs, tokens, progress=progress, shipped=runs is None
        )
    files = save_figure(phase_change_figure(curves), out, "phase_change")
    if as_json:
        print_json({"curves": curves, "missing": missing, "files": [str(f) for f in files]})
        return
    for m in missing:
        label = "note" if "curves shipped in" in m else "warning"
        err_console.print(f"[yellow]{label}:[/] {m}", highlight=False)
    for c in curves:
        t = Table(title=f"{c.recipe} (early positions {c.early}, late {c.late})")
        for col in ("step", "tokens", "ICL score", "induction", "prev-token"):
            t.add_column(col, justify="right")
        for p in c.points:
            t.add_row(
                str(p.step),
                f"{p.tokens:,}",
                f"{p.icl_score:+.3f}",
                f"{p.induction_score:.2f} {p.induction_head}",
                f"{p.prev_token_score:.2f} {p.prev_token_head}",
            )
        console.print(t)
    for f in files:
        console.print(f"wrote {f}", soft_wrap=True, highlight=False)


def _induction_plan(recipes: list[str], runs: Path | None) -> str:
    """One line: which recipes are measured on the user's snapshots, which drawn from the
    curves shipped with lenscope (only without --runs), which have neither."""
    from lenscope.circuits.phase import list_snapshots, run_dir_of, shipped_curves_dir

    parts, shipped, none = [], [], []
    for r in recipes:
        d = run_dir_of(r, runs) / "snapshots"
        n = len(list_snapshots(d.parent))
        if n:
            parts.append(f"measuring {r} on your {n} snapshot{'s' * (n != 1)} in {d}")
        elif runs is None and shipped_curves_dir().is_dir():
            shipped.append(r)
        else:
            none.append(r)
    if shipped:
        parts.append(f"drawing the shipped curves of {', '.join(shipped)} (no local snapshots)")
    if none:
        parts.append(f"no snapshots for {', '.join(none)}")
    return "induction phase change: " + "; ".join(parts)
