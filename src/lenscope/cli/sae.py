"""`lenscope sae train|eval|export|import|cache|list|experiment`: sparse autoencoders."""

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
    name="sae",
    help="Sparse autoencoders: train (TopK, BatchTopK, ReLU+L1), evaluate, convert, experiment.",
    no_args_is_help=True,
)


THREADS_OPTION = typer.Option(
    None, "--threads", help="CPU threads for torch (1 is faster on a crowded machine)."
)


def _threads(n: int | None) -> None:
    if n is not None:
        if n < 1:
            raise InputError(f"--threads must be at least 1, got {n}")
        import torch

        torch.set_num_threads(n)


def _log(json: bool) -> Callable[[str], None]:
    """Messages go to stdout, or to stderr when stdout carries JSON."""
    out = err_console if json else console
    return lambda s: out.print(s, highlight=False)


def _table(title: str, rows: list[tuple[str, str]]) -> None:
    t = Table(title=title, show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    for a, b in rows:
        t.add_row(a, b)
    console.print(t)


@sub.command()
def train(
    model: str = typer.Argument(..., help="Model name (e.g. mini) or checkpoint directory."),
    hook: str = typer.Option(..., "--hook", help="Hook point, e.g. blocks.2.hook_resid_post."),
    k: int = typer.Option(32, "--k", help="Active latents per token (TopK, BatchTopK)."),
    arch: str = typer.Option("topk", "--arch", help="topk | batchtopk | relu"),
    latents: int | None = typer.Option(None, "--latents", help="Latent count (default 16 x d_in)."),
    expansion: int = typer.Option(16, "--expansion", help="Latents per input dimension."),
    steps: int = typer.Option(1000, "--steps"),
    batch_size: int = typer.Option(4096, "--batch-size", help="Tokens per step (global)."),
    lr: float | None = typer.Option(None, "--lr", help="Default 2e-4 / sqrt(latents / 2^14)."),
    auxk: bool = typer.Option(True, "--auxk/--no-auxk", help="AuxK loss on dead latents."),
    k_aux: int | None = typer.Option(None, "--k-aux", help="Dead latents in AuxK (d_in/2)."),
    dead_tokens: int | None = typer.Option(None, "--dead-tokens", help="Dead after N tokens."),
    multi_topk: bool = typer.Option(False, "--multi-topk", help="Add the 4k loss (x 1/8)."),
    normalize: bool = typer.Option(False, "--normalize", help="OpenAI's input normalisation."),
    l1: float = typer.Option(1.0, "--l1", help="L1 coefficient of the ReLU baseline."),
    data: list[str] | None = typer.Option(None, "--data", help="Token dataset or text files."),
    cache: Path | None = typer.Option(None, "--cache", help="Train from `sae cache` output."),
    ctx: int | None = typer.Option(None, "--ctx", help="Window length (default n_ctx)."),
    seed: int = typer.Option(0, "--seed"),
    ckpt_every: int = typer.Option(100, "--ckpt-every", help="Checkpoint every N steps."),
    out: Path | None = typer.Option(None, "--out", help="SAE artifact directory."),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Checkpoint directory."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore existing checkpoints."),
    half: bool = typer.Option(False, "--half", help="Store the SAE in float16."),
    threads: int | None = THREADS_OPTION,
    device: str = DEVICE_OPTION,
    json: bool = JSON_OPTION,
) -> None:
    """Train an SAE on a model's activations at a hook point (resumes from its checkpoint).

    Data-parallel: torchrun --nproc_per_node N $(which lenscope) sae train ...
    """
    from lenscope.model import load_model
    from lenscope.sae import TrainConfig, sae_config_for, train_sae
    from lenscope.sae.buffer import CachedSource
    from lenscope.sae.distributed import comm_from_env

    _threads(threads)
    comm = comm_from_env()
    m = load_model(model, device=device)  # under torchrun, "cuda" is this rank's GPU
    cfg = sae_config_for(
        m, hook, architecture=arch, k=k, d_sae=latents, expansion=expansion, normalize=normalize
    )
    tc = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        use_auxk=auxk,
        auxk=k_aux,
        dead_tokens=dead_tokens,
        multi_topk=multi_topk,
        l1_coefficient=l1,
        ctx=ctx,
        seed=seed,
        ckpt_every=ckpt_every,
    )
    source = None
    if cache is not None:
        source = CachedSource(cache)
        if source.hook_name != hook:
            raise InputError(f"{cache} holds activations of {source.hook_name}, not {hook}")
        if source.model_fingerprint not in (None, cfg.model_fingerprint):
            raise InputError(f"{cache} was cached from a different model than {model}")
    res = train_sae(
        cfg,
        tc,
        model=m,
        data=data,
        source=source,
        out=out,
        run_dir=run_dir,
        fresh=fresh,
        half=half,
        comm=comm,
        log=_log(json),
    )
    if not comm.is_main:
        return
    if json:
        print_json(res)
        return
    _table(
        f"SAE on {model} {hook}",
        [
            ("artifact", str(res.path)),
            ("steps / tokens", f"{res.steps:,} / {res.tokens:,}"),
            ("normalised MSE (last batch)", f"{res.nmse:.4f}"),
            ("L0", f"{res.l0:.2f}"),
            (
                "dead latents",
                f"{100 * res.dead_fraction:.2f}% (no firing in {res.dead_window_tokens:,} tokens)",
            ),
            ("learning rate", f"{res.lr:.2e}"),
        ],
    )


@sub.command("eval")
def eval_(
    sae: str = typer.Argument(..., help="SAE name or directory."),
    model: str | None = typer.Option(None, "--model", help="Default: the model it was trained on."),
    tokens: int = typer.Option(65536, "--tokens", help="Held-out tokens to evaluate."),
    data: list[str] | None = typer.Option(None, "--data", help="Token dataset or text files."),
    ablations: int = typer.Option(32, "--ablations", help="Single-latent ablations (0: skip)."),
    force: bool = typer.Option(False, "--force", help="Allow a model with another fingerprint."),
    out: Path = typer.Option(Path("lenscope-out/sae-eval"), "--out", help="Plot directory."),
    threads: int | None = THREADS_OPTION,
    device: str = DEVICE_OPTION,
    json: bool = JSON_OPTION,
) -> None:
    """FVU, L0, dead latents, density, downstream loss recovered, KL, ablation sparsity."""
    from lenscope.data import token_stream
    from lenscope.model import load_model
    from lenscope.sae import load_sae
    from lenscope.sae.evaluate import evaluate_sae
    from lenscope.sae.plots import plot_eval

    _threads(threads)
    s = load_sae(sae, device=device)
    name = model or s.cfg.model_name
    if not name:
        raise InputError(f"{sae} records no model; pass --model")
    m = load_model(name, device=device)
    streams = token_stream(m, data, progress=not json, log=_log(json))
    res = evaluate_sae(
        m,
        s,
        streams.val,
        n_tokens=tokens,
        ablation_samples=ablations,
        strict=not force,
        progress=not json,
    )
    res.plots = plot_eval(res, out)
    if json:
        print_json(res)
        return
    rows = [
        ("held-out tokens", f"{res.n_tokens:,}"),
        ("FVU (normalised MSE)", f"{res.fvu:.4f}"),
        ("L0", f"{res.l0:.2f}"),
        (
            "dead latents",
            f"{res.dead_latents} ({100 * res.dead_fraction:.1f}%, none fired in {res.dead_window_tokens:,} tokens)",
        ),
        ("CE clean / SAE", f"{res.ce_clean:.4f} / {res.ce_sae:.4f}"),
        ("CE zero / mean ablation", f"{res.ce_zero:.4f} / {res.ce_mean:.4f}"),
        (
            "loss recovered (zero / mean)",
            f"{100 * res.loss_recovered:.1f}% / {100 * res.loss_recovered_mean:.1f}%",
        ),
        ("KL(clean || SAE)", f"{res.kl_sae:.4f} nats/token"),
    ]
    if res.ablation is not None:
        a = res.ablation
        rows.append(
            (
                "ablation sparsity",
                f"latents {a.latents:.3f}, channels {a.channels:.3f} (lower = sparser, {a.n_ablations} ablations)",
            )
        )
    _table(f"{sae} on {res.model} {res.hook_name}", rows)
    for p in res.plots:
        console.print(p, highlight=False)


@sub.command("export")
def export(
    sae: str = typer.Argument(..., help="SAE name or directory."),
    out: Path = typer.Option(..., "--out", help="Destination directory."),
    fmt: str = typer.Option("saelens", "--format", help="saelens | sparsify"),
) -> None:
    """Write the SAE in another library's format (SAELens loads it with SAE.load_from_disk)."""
    from lenscope.sae import load_sae
    from lenscope.sae.formats import export_saelens, export_sparsify

    s = load_sae(sae)
    if fmt == "saelens":
        export_saelens(s, out)
    elif fmt == "sparsify":
        export_sparsify(s, out)
    else:
        raise InputError(f"unknown export format {fmt!r}; use saelens or sparsify")
    console.print(f"wrote {out}", highlight=False)


@sub.command("import")
def import_(
    path: Path = typer.Argument(
        ..., help="SAELens/sparsify/Gemma Scope directory, params.npz, or OpenAI .pt file."
    ),
    out: Path = typer.Option(..., "--out", help="Destination SAE artifact directory."),
    fmt: str | None = typer.Option(
        None, "--format", help="saelens | openai | sparsify | gemmascope"
    ),
    hook: str | None = typer.Option(
        None,
        "--hook",
        help="Hook point (if the files lack it); for Gemma Scope a site such as resid_post "
        "is completed by the layer_{l} folder.",
    ),
    model: str | None = typer.Option(None, "--model", help="Check against and record this model."),
    k: int | None = typer.Option(None, "--k", help="TopK k for OpenAI safetensors files."),
    device: str = DEVICE_OPTION,
) -> None:
    """Import an SAE from SAELens, OpenAI's sparse_autoencoder, sparsify or Gemma Scope into a
    lenscope artifact."""
    from lenscope.model import fingerprint, load_model
    from lenscope.sae import Dictionary, check_compatible, save_sae
    from lenscope.sae.formats import import_sae

    s = import_sae(path, fmt, hook_name=hook, k=k)
    if model is not None:
        m = load_model(model, device=device)
        s = s.to(m.device)
        s.cfg = s.cfg.with_(model_name=m.cfg.name, model_fingerprint=None)
        check_compatible(m, Dictionary.of(s))
        s.cfg = s.cfg.with_(model_fingerprint=fingerprint(m))
    save_sae(s, out, provenance={"imported_from": str(path), "format": fmt or "auto"})
    console.print(
        f"imported {s.cfg.architecture} SAE ({s.cfg.d_in} -> {s.cfg.d_sae}) to {out}",
        highlight=False,
    )


@sub.command()
def cache(
    model: str = typer.Argument(...),
    hook: str = typer.Option(..., "--hook"),
    tokens: int = typer.Option(
        ..., "--tokens", help="Activations to cache (rounded up to blocks)."
    ),
    out: Path = typer.Option(..., "--out"),
    data: list[str] | None = typer.Option(None, "--data"),
    ctx: int | None = typer.Option(None, "--ctx"),
    seed: int = typer.Option(0, "--seed"),
    threads: int | None = THREADS_OPTION,
    device: str = DEVICE_OPTION,
) -> None:
    """Cache activations at a hook point to disk (train later with --cache)."""
    from lenscope.data import token_stream
    from lenscope.model import load_model
    from lenscope.sae.cache import write_cache

    _threads(threads)
    m = load_model(model, device=device)
    st = token_stream(m, data)
    p = write_cache(
        m, hook, st.train, out, n_tokens=tokens, ctx=ctx, seed=seed, source_note=st.source
    )
    console.print(f"wrote {p}", highlight=False)


@sub.command("list")
def list_(json: bool = JSON_OPTION) -> None:
    """SAEs that load by name (shipped in assets/saes, trained in $LENSCOPE_HOME/saes)."""
    from lenscope.sae import list_saes

    entries = list_saes()
    if json:
        print_json(entries)
        return
    print_loadable(entries, "SAEs", "an SAE")


@sub.command()
def experiment(
    which: str = typer.Argument(..., help="frontier | auxk | scaling"),
    model: str = typer.Option("mini", "--model"),
    hook: str = typer.Option("blocks.2.hook_resid_post", "--hook"),
    steps: int = typer.Option(300, "--steps", help="Steps per run."),
    batch_size: int = typer.Option(2048, "--batch-size"),
    latents: int = typer.Option(1024, "--latents", help="Latents (frontier, auxk)."),
    k: int = typer.Option(16, "--k", help="k (auxk)."),
    blocks: int = typer.Option(4, "--blocks", help="Activation blocks of 64k tokens to cycle."),
    lr: float | None = typer.Option(None, "--lr", help="Default 2e-4 / sqrt(latents / 2^14)."),
    dead_tokens: int | None = typer.Option(None, "--dead-tokens", help="Dead after N tokens."),
    out: Path = typer.Option(Path("lenscope-out/sae-experiment"), "--out"),
    threads: int | None = THREADS_OPTION,
    device: str = DEVICE_OPTION,
    json: bool = JSON_OPTION,
) -> None:
    """Run one of the TopK paper's experiments at CPU scale; print a table and write a plot."""
    from lenscope.data import token_stream
    from lenscope.model import load_model
    from lenscope.sae import TrainConfig
    from lenscope.sae import experiments as ex
    from lenscope.sae.plots import plot_experiment

    if which not in ("frontier", "auxk", "scaling"):
        raise InputError(f"unknown experiment {which!r}; choose frontier, auxk or scaling")
    _threads(threads)
    m = load_model(model, device=device)
    log = _log(json)
    setup = ex.prepare(
        m,
        hook,
        token_stream(m, progress=not json, log=log),
        TrainConfig(steps=steps, batch_size=batch_size, lr=lr, dead_tokens=dead_tokens),
        blocks=blocks,
        log=log,
    )
    if which == "frontier":
        runs = ex.frontier(setup, d_sae=latents, log=log)
    elif which == "auxk":
        runs = ex.auxk_effect(setup, d_sae=latents, k=k, log=log)
    else:
        runs = ex.scaling(setup, log=log)
    res = ex.ExperimentResult(which, m.cfg.name, hook, steps * batch_size, setup.val.shape[0], runs)
    res.plots = plot_experiment(res, out)
    if json:
        print_json(res)
        return
    t = Table(title=f"{which}: {m.cfg.name} {hook}, {steps * batch_size:,} training tokens per run")
    for c in ("run", "latents", "L0", "FVU", "dead %", "seconds"):
        t.add_column(c)
    for r in runs:
        t.add_row(
            r.label,
            str(r.d_sae),
            f"{r.l0:.1f}",
            f"{r.fvu:.4f}",
            f"{100 * r.dead_fraction:.1f}",
            f"{r.seconds:.0f}",
        )
    console.print(t)
    for p in res.plots:
        console.print(p, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(sub, name="sae")


from lenscope.cli.bench import bench as _bench  # noqa: E402  the `sae bench` subcommand

sub.command("bench")(_bench)
