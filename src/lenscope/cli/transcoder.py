"""`lenscope transcoder train|eval|export|import|list`: transcoder sets (one per layer, or one
cross-layer transcoder) that replace a model's MLPs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.table import Table

from lenscope.cli.common import (
    DEVICE_OPTION,
    JSON_OPTION,
    console,
    err_console,
    print_json,
    print_loadable,
)
from lenscope.errors import InputError

sub = typer.Typer(
    name="transcoder",
    help="Transcoders: train (TopK, BatchTopK, JumpReLU, ReLU; skip; cross-layer), evaluate, "
    "export to circuit-tracer / SAELens, import.",
    no_args_is_help=True,
)


def _log(json: bool) -> Callable[[str], None]:
    out = err_console if json else console
    return lambda s: out.print(s, highlight=False)


def _threads(n: int | None) -> None:
    if n is not None:
        if n < 1:
            raise InputError(f"--threads must be at least 1, got {n}")
        import torch

        torch.set_num_threads(n)


def parse_layers(text: str | None) -> list[int] | None:
    """ "0,2,3" or "1-3" (or both, comma-separated) -> sorted layer numbers; None: all."""
    if text is None or text.strip() in ("", "all"):
        return None
    out: set[int] = set()
    for part in text.split(","):
        p = part.strip()
        try:
            if "-" in p:
                a, b = (int(v) for v in p.split("-", 1))
                if b < a:
                    raise ValueError
                out.update(range(a, b + 1))
            else:
                out.add(int(p))
        except ValueError:
            raise InputError(
                f"--layers {text!r}: give layer numbers like 0,1,3 or a range like 0-3"
            ) from None
    return sorted(out)


@sub.command()
def train(
    model: str = typer.Argument(..., help="Model name (e.g. mini) or checkpoint directory."),
    layers: str | None = typer.Option(None, "--layers", help="e.g. 0,1 or 0-3 (default all)."),
    activation: str = typer.Option(
        "batchtopk", "--activation", help="topk | batchtopk | jumprelu | relu"
    ),
    k: int = typer.Option(32, "--k", help="Active latents per token (TopK, BatchTopK)."),
    d_sae: int | None = typer.Option(None, "--d-sae", help="Latents per layer (default 8 x d_in)."),
    steps: int = typer.Option(1000, "--steps"),
    batch_size: int = typer.Option(4096, "--batch-size", help="Tokens per step (global)."),
    lr: float | None = typer.Option(None, "--lr", help="Default 2e-4 / sqrt(d_sae / 2^14)."),
    skip: bool = typer.Option(False, "--skip", help="Add a linear skip W_skip [d_in, d_out]."),
    cross_layer: bool = typer.Option(
        False, "--cross-layer", help="One cross-layer transcoder (relu or jumprelu)."
    ),
    l1: float = typer.Option(1.0, "--l1", help="L1 coefficient (relu)."),
    l0: float = typer.Option(1e-3, "--l0", help="L0 coefficient (jumprelu)."),
    dead_tokens: int | None = typer.Option(None, "--dead-tokens", help="Dead after N tokens."),
    data: list[str] | None = typer.Option(None, "--data", help="Token dataset or text files."),
    ctx: int | None = typer.Option(None, "--ctx", help="Window length (default n_ctx)."),
    buffer_tokens: int = typer.Option(16384, "--buffer-tokens", help="Shuffling buffer."),
    seed: int = typer.Option(0, "--seed"),
    ckpt_every: int = typer.Option(100, "--ckpt-every", help="Checkpoint every N steps."),
    name: str | None = typer.Option(None, "--name", help="Set name (in $LENSCOPE_HOME)."),
    out: Path | None = typer.Option(None, "--out", help="Set directory (overrides --name)."),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Checkpoint directory."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore existing checkpoints."),
    half: bool = typer.Option(False, "--half", help="Store the set in float16."),
    device: str = DEVICE_OPTION,
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch."),
    json: bool = JSON_OPTION,
) -> None:
    """Train a transcoder set on a model's MLPs (resumes from its checkpoint after a kill).

    Data-parallel: torchrun --nproc_per_node N $(which lenscope) transcoder train ...
    """
    from lenscope.artifacts import lenscope_home
    from lenscope.device import resolve_device
    from lenscope.model import load_model
    from lenscope.sae.config import TrainConfig
    from lenscope.sae.distributed import comm_from_env
    from lenscope.sae.transcoder_step import SparsityConfig
    from lenscope.sae.transcoder_train import (
        default_name,
        train_transcoders,
        transcoder_config_for,
    )

    _threads(threads)
    dev = resolve_device(device)
    comm = comm_from_env(str(dev))
    if name is not None and ("/" in name or not name.strip()):
        raise InputError(f"--name {name!r} must be a plain name; use --out for a path")
    m = load_model(model, device=dev)
    cfg = transcoder_config_for(
        m,
        layers=parse_layers(layers),
        activation=activation,
        k=k if activation in ("topk", "batchtopk") else None,
        d_sae=d_sae,
        skip=skip,
        cross_layer=cross_layer,
    )
    tc = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        dead_tokens=dead_tokens,
        l1_coefficient=l1,
        ctx=ctx,
        buffer_tokens=buffer_tokens,
        seed=seed,
        ckpt_every=ckpt_every,
    )
    set_name = name or default_name(cfg)
    res = train_transcoders(
        cfg,
        tc,
        model=m,
        data=data,
        sparsity=SparsityConfig(l1_coefficient=l1, l0_coefficient=l0),
        out=out or lenscope_home() / "transcoders" / set_name,
        run_dir=run_dir or lenscope_home() / "runs" / f"transcoders-{set_name}",
        fresh=fresh,
        half=half,
        comm=comm,
        log=_log(json),
        device=dev,
    )
    if not comm.is_main:
        return
    if json:
        print_json(res)
        return
    t = Table(title=f"transcoders on {m.cfg.name}", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    rows = [
        ("set", str(res.path)),
        ("steps / tokens", f"{res.steps:,} / {res.tokens:,}"),
        ("FVU (last batch)", f"{res.nmse:.4f}"),
        ("FVU per layer", "  ".join(f"{v:.3f}" for v in res.nmse_layers)),
        ("L0 per layer", f"{res.l0:.2f}"),
        (
            "dead latents",
            f"{100 * res.dead_fraction:.2f}% (none fired in {res.dead_window_tokens:,} tokens)",
        ),
    ]
    for a, b in rows:
        t.add_row(a, b)
    console.print(t)


@sub.command("eval")
def eval_(
    transcoders: str = typer.Argument(..., help="Set name or directory (any supported layout)."),
    model: str | None = typer.Option(None, "--model", help="Default: the set's model."),
    tokens: int = typer.Option(32768, "--tokens", help="Held-out tokens to evaluate."),
    data: list[str] | None = typer.Option(None, "--data", help="Token dataset or text files."),
    force: bool = typer.Option(False, "--force", help="Allow a model with another fingerprint."),
    record: bool = typer.Option(False, "--record", help="Write the figures into the manifest."),
    device: str = DEVICE_OPTION,
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch."),
    json: bool = JSON_OPTION,
) -> None:
    """FVU, L0 and dead latents per layer; the loss with every MLP replaced (no error) against
    the model and every MLP zeroed: fraction of loss recovered."""
    from lenscope.data import token_stream
    from lenscope.device import resolve_device
    from lenscope.model import load_model
    from lenscope.sae import load_transcoder_set
    from lenscope.sae.transcoder_eval import evaluate_transcoders
    from lenscope.sae.transcoder_set import update_metrics

    _threads(threads)
    dev = resolve_device(device)
    peek = load_transcoder_set(transcoders) if model is None else None
    name = model or (peek.cfg.model_name if peek is not None else "")
    if not name:
        raise InputError(f"{transcoders} records no model; pass --model")
    m = load_model(name, device=dev)
    ts = load_transcoder_set(transcoders, model=m, device=dev, strict=not force)
    streams = token_stream(m, data, progress=not json, log=_log(json))
    res = evaluate_transcoders(
        m, ts, streams.val, n_tokens=tokens, strict=not force, progress=not json
    )
    if record:
        if ts.path is None or not (ts.path / "manifest.json").is_file():
            raise InputError("--record writes into a lenscope set; import the set first")
        update_metrics(ts.path, res.figures())
    if json:
        print_json(res)
        return
    t = Table(title=f"{ts.name} on {m.cfg.name} ({res.n_tokens:,} held-out tokens)")
    for c in ("layer", "FVU", "L0", "dead %"):
        t.add_column(c)
    for lay in res.layers:
        t.add_row(
            str(lay.layer), f"{lay.fvu:.4f}", f"{lay.l0:.2f}", f"{100 * lay.dead_fraction:.1f}"
        )
    t.add_row("all", f"{res.fvu:.4f}", f"{res.l0:.2f}", f"{100 * res.dead_fraction:.1f}")
    console.print(t)
    console.print(
        f"loss: model {res.ce_orig:.4f}, every MLP replaced {res.ce_replaced:.4f}, every MLP "
        f"zeroed {res.ce_zero:.4f}: {100 * res.loss_recovered:.1f}% of the loss recovered",
        highlight=False,
    )


@sub.command("export")
def export(
    transcoders: str = typer.Argument(..., help="Set name or directory."),
    out: Path = typer.Option(..., "--out", help="Destination directory."),
    fmt: str = typer.Option("circuit-tracer", "--format", help="circuit-tracer | saelens"),
    model: str | None = typer.Option(None, "--model", help="Default: the set's model."),
) -> None:
    """Write the set in circuit-tracer's layout (config.yaml + per-layer safetensors) or SAELens'
    (one cfg.json + sae_weights.safetensors folder per layer)."""
    from lenscope.model import load_model
    from lenscope.sae import load_transcoder_set
    from lenscope.sae.transcoder_export import FORMATS, export_transcoder_set

    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; use {' or '.join(FORMATS)}")
    m = load_model(model) if model is not None else None
    ts = load_transcoder_set(transcoders, model=m, strict=False)
    if fmt == "circuit-tracer" and m is None:
        if not ts.cfg.model_name:
            raise InputError(f"{transcoders} records no model; pass --model")
        m = load_model(ts.cfg.model_name)
    export_transcoder_set(ts, out, fmt, model=m)
    console.print(f"wrote {out} ({fmt})", highlight=False)


@sub.command("import")
def import_(
    path: Path = typer.Argument(..., help="circuit-tracer, SAELens or sparsify transcoders."),
    out: Path = typer.Option(..., "--out", help="Destination set directory."),
    model: str = typer.Option(..., "--model", help="The model they belong to (checked)."),
    half: bool = typer.Option(False, "--half", help="Store in float16."),
) -> None:
    """Import transcoders from another library's layout into a lenscope set."""
    from dataclasses import replace

    from lenscope.model import fingerprint, load_model
    from lenscope.sae import load_transcoder_set
    from lenscope.sae.transcoder_set import save_transcoder_set

    m = load_model(model)
    ts = load_transcoder_set(path, model=m, strict=False)
    fp = fingerprint(m)
    ts.cfg = replace(ts.cfg, model_name=m.cfg.name, model_fingerprint=fp)
    for t in ts.transcoders:
        t.cfg = replace(t.cfg, model_name=m.cfg.name, model_fingerprint=fp)
    save_transcoder_set(ts, out, provenance={"imported_from": str(path)}, half=half)
    kind = "cross-layer" if ts.cross_layer else "per-layer"
    console.print(
        f"imported {kind} {ts.cfg.activation} transcoders (layers {ts.layers}, "
        f"{ts.cfg.d_sae} latents) to {out}",
        highlight=False,
    )


@sub.command("list")
def list_(json: bool = JSON_OPTION) -> None:
    """Transcoder sets that load by name (shipped in assets/transcoders, trained in
    $LENSCOPE_HOME/transcoders)."""
    from lenscope.sae.transcoder_set import list_transcoder_sets

    entries = list_transcoder_sets()
    if json:
        print_json(entries)
        return
    print_loadable(entries, "Transcoder sets", "a transcoder set")


def register(app: typer.Typer) -> None:
    app.add_typer(sub, name="transcoder")
