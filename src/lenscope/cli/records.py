"""`lenscope harvest | show | explain`: component records and their explanations.

lenscope harvest mini                       # records + offline explanations, default corpus
lenscope harvest mini --sae NAME            # ... and that SAE's latents
lenscope harvest mini --sae TRANSCODERS     # ... a transcoder folder's features, like SAE latents
torchrun --nproc_per_node 4 $(which lenscope) harvest mini --tokens 50000000
lenscope show mini L1.N42                   # terminal view + HTML page (--json)
lenscope show mini --search " def"          # nodes whose top tokens include " def"
lenscope show mini --text "for i in range(" # nodes most active on a text
lenscope explain mini --llm-url http://127.0.0.1:8000/v1 --llm-model qwen --nodes L1.N42
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from lenscope.cli.common import JSON_OPTION, console, print_json
from lenscope.device import DEVICE_HELP
from lenscope.errors import InputError

if TYPE_CHECKING:
    import torch

    from lenscope.model import HookedTransformer
    from lenscope.records import Records
    from lenscope.sae import Dictionary

DEFAULT_TOKENS = 1 << 19


def _load(model: str, device: str) -> HookedTransformer:
    from lenscope.model import load_model

    # "auto" and "cuda" are this process's GPU under torchrun (lenscope.device.resolve_device)
    return load_model(model, device=device).eval()


def _saes(
    names: list[str] | None, device: str | torch.device, model: HookedTransformer | None = None
) -> list[Dictionary]:
    """SAEs and transcoders by name or path (a transcoder folder gives one per layer)."""
    if not names:
        return []
    from lenscope.sae.io import load_dictionaries

    return [d for n in names for d in load_dictionaries(n, model, device=device)]


def _own_saes(model: HookedTransformer) -> dict[str, str]:
    """Shipped or trained SAEs and transcoder sets made for this very model (by fingerprint), by
    the hook each dictionary reads (a set's path appears once per layer it holds)."""
    from lenscope.model import fingerprint
    from lenscope.sae.io import saes_by_hook
    from lenscope.sae.transcoder_set import load_transcoder_set, transcoder_sets_for_model

    fp = fingerprint(model)
    own = {h: str(p) for h, p in saes_by_hook(fp, residual_only=True).items()}
    for path in transcoder_sets_for_model(fp):
        for dic in load_transcoder_set(path).dictionaries():
            own.setdefault(dic.hook_in, str(path))
    return own


def _records_sae_hooks(records: Records) -> set[str]:
    return {str(d.get("hook")) for d in records.manifest.provenance.get("saes", [])}


def ensure_records(model: str, log: Callable[[str], None] = print, device: str = "auto") -> Path:
    """The records of `model` (harvested or shipped); harvest them with the defaults (and the
    SAEs made for the model) plus offline explanations when missing. For `lenscope demo`."""
    from lenscope.explain import OfflineExplainer, explain_records
    from lenscope.model import fingerprint
    from lenscope.records import HarvestConfig, Records, default_records_dir, find_records, harvest

    m = _load(model, device)
    own = _own_saes(m)
    found = find_records(model)
    if found is not None and Records(found).fingerprint == fingerprint(m):
        missing = set(own) - _records_sae_hooks(Records(found))
        if not missing:
            return found
        log(f"the records of {model} have no latents of its SAE at {', '.join(sorted(missing))}")
    dest = default_records_dir(model)
    log(f"harvesting the records of {model} (once, a few minutes)")
    harvest(
        m,
        dest,
        saes=_saes(sorted(set(own.values())), m.device, m),
        config=HarvestConfig(n_tokens=DEFAULT_TOKENS),
        log=log,
    )
    explain_records(Records(dest), OfflineExplainer())
    return dest


def harvest_cmd(
    model: str = typer.Argument(..., help="Model name (e.g. mini) or checkpoint directory."),
    sae: list[str] | None = typer.Option(
        None,
        "--sae",
        help="SAE or transcoder name or path (repeatable; a transcoder folder or circuit-tracer "
        "config gives every layer's; default: the SAEs made for MODEL).",
    ),
    no_sae: bool = typer.Option(False, "--no-sae", help="No SAE latents."),
    tokens: int = typer.Option(DEFAULT_TOKENS, "--tokens", help="Tokens to stream."),
    corpus: list[str] | None = typer.Option(
        None, "--corpus", help="Text files/dirs or a token dataset (default: the stdlib)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Records directory."),
    ctx: int = typer.Option(0, "--ctx", help="Tokens per row (default min(n_ctx, 256))."),
    batch_rows: int = typer.Option(16, "--batch-rows", help="Rows per forward pass."),
    top_k: int = typer.Option(20, "--top-k", help="Top examples kept per node."),
    random_k: int = typer.Option(20, "--random-k", help="Random examples kept."),
    context_only: int = typer.Option(
        1,
        "--context-only",
        help="First positions of each row that are never top examples (no context before them).",
    ),
    heads: bool = typer.Option(True, "--heads/--no-heads", help="Records of attention heads."),
    mlp: bool = typer.Option(True, "--mlp/--no-mlp", help="Records of MLP neurons."),
    seed: int = typer.Option(0, "--seed"),
    effects: bool = typer.Option(
        True, "--effects/--no-effects", help="Output-token effects from the weights."
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    explain: bool = typer.Option(True, "--explain/--no-explain", help="Offline explanations."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if up to date."),
    json: bool = JSON_OPTION,
) -> None:
    """Stream a corpus through MODEL once and record every neuron, head and SAE latent.

    Resumable (rerun after a crash) and distributed: torchrun --nproc_per_node N $(which lenscope)
    harvest ... gives the same records as one process.
    """
    from lenscope.explain import OfflineExplainer, explain_records
    from lenscope.records import HarvestConfig, Records, default_records_dir, harvest
    from lenscope.records.parallel import init_distributed

    m = _load(model, device)
    saes = [] if no_sae else _saes(sae or sorted(set(_own_saes(m).values())), m.device, m)
    cfg = HarvestConfig(
        n_tokens=tokens,
        ctx=ctx,
        batch_rows=batch_rows,
        shard_rows=max(batch_rows, 128 // batch_rows * batch_rows),
        top_k=top_k,
        random_k=random_k,
        context_only=context_only,
        heads=heads,
        mlp=mlp,
        seed=seed,
        effects=effects,
    )
    dest = out or default_records_dir(model)
    rank, _ = init_distributed()
    quiet = json or rank != 0

    def log(msg: str) -> None:
        if not quiet:
            console.print(msg, highlight=False)

    res = harvest(
        m, dest, saes=saes, config=cfg, corpus=corpus, progress=rank == 0, force=force, log=log
    )
    if rank != 0:
        return
    summary = None
    if explain:
        recs = Records(dest)
        have = {e.node_id for e in recs.explanations() if e.explainer == "offline"}
        if res.up_to_date and len(have) == len(recs.node_ids()):
            log("offline explanations are up to date")
        else:
            summary = explain_records(recs, OfflineExplainer(), progress=not json)
    if json:
        print_json({"harvest": res, "explain": summary})
        return
    if res.up_to_date:
        console.print(f"records at {dest} are up to date (--force rebuilds them)")
    else:
        console.print(
            f"{res.n_nodes:,} nodes over {res.n_tokens:,} tokens at "
            f"{res.tokens_per_s:,.0f} tokens/s -> {dest}"
        )
    if summary is not None:
        score = "n/a" if summary.mean_score is None else f"{summary.mean_score:.3f}"
        ctrl = "n/a" if summary.mean_control is None else f"{summary.mean_control:.3f}"
        console.print(
            f"offline explanations: {summary.ok} ok, {summary.failed} failed; mean "
            f"score {score} (shuffled control {ctrl})"
        )
    console.print(f"look at one: lenscope show {model} <node>   (e.g. L0.H0)")


def show_cmd(
    model: str = typer.Argument(..., help="Model name or checkpoint directory."),
    node: str | None = typer.Argument(None, help="Node id, e.g. L1.N42, L0.H3, L2.resid_post.F7."),
    records: Path | None = typer.Option(None, "--records", help="Records directory."),
    search: str | None = typer.Option(
        None, "--search", help="Nodes whose top tokens include this."
    ),
    where: str = typer.Option("top", "--where", help="--search in: top | boost | suppress"),
    text: str | None = typer.Option(None, "--text", help="Nodes most active on this text."),
    sae: list[str] | None = typer.Option(
        None, "--sae", help="SAE(s) for --text latents (default: the SAEs made for MODEL)."
    ),
    examples: int = typer.Option(6, "--examples", help="Top examples printed."),
    limit: int = typer.Option(20, "--limit", help="Rows for --search / --text."),
    out: Path = typer.Option(Path("lenscope-out/show"), "--out", help="Folder of the HTML page."),
    device: str = typer.Option("cpu", "--device", help="for --text: " + DEVICE_HELP),
    json: bool = JSON_OPTION,
) -> None:
    """Show a node's record (terminal + a self-contained HTML page), or search the records."""
    from lenscope.records import most_active, open_records
    from lenscope.records.render import render_record
    from lenscope.viz.record_html import render_html

    if sum(x is not None for x in (node, search, text)) != 1:
        raise InputError("give exactly one of NODE, --search TOKEN or --text TEXT")
    m = _load(model, device)
    recs = open_records(records, m, model)
    if search is not None:
        hits = recs.search_tokens(search, where, limit)
        if json:
            print_json(hits)
            return
        t = Table(title=f"nodes whose {where} tokens include {search!r}")
        for c in ("node", "kind", "matches", "max"):
            t.add_column(c)
        for h in hits:
            t.add_row(h.node_id, h.kind, str(h.matches), f"{h.max:.3g}")
        console.print(t)
        return
    if text is not None:
        active = most_active(
            recs, m, text, _saes(sae or sorted(set(_own_saes(m).values())), m.device, m), limit
        )
        if json:
            print_json(active)
            return
        t = Table(title=f"nodes most active on {text!r} (activation / max over the records)")
        for c in ("node", "kind", "ratio", "activation", "at token"):
            t.add_column(c)
        for a in active:
            t.add_row(
                a.node_id,
                a.kind,
                f"{a.ratio:.2f}",
                f"{a.activation:.3g}",
                f"{a.position}: {a.token!r}",
            )
        console.print(t)
        return
    assert node is not None
    rec = recs.node(node)
    out.mkdir(parents=True, exist_ok=True)
    page = out / f"{Path(model).name}-{rec.node_id}.html"
    page.write_text(render_html(rec), "utf-8")
    if json:
        print_json({"record": rec, "html": page})
        return
    render_record(console, rec, examples)
    console.print(f"page: {page}")


def explain_cmd(
    model: str = typer.Argument(..., help="Model name or checkpoint directory."),
    records: Path | None = typer.Option(None, "--records", help="Records directory."),
    nodes: list[str] | None = typer.Option(None, "--nodes", help="Node ids (comma-separated)."),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N nodes."),
    llm_url: str | None = typer.Option(None, "--llm-url", help="OpenAI-compatible endpoint."),
    llm_model: str = typer.Option("default", "--llm-model", help="Model name for the endpoint."),
    llm_key: str | None = typer.Option(
        None, "--llm-key", help="API key (default $LENSCOPE_LLM_KEY or $OPENAI_API_KEY)."
    ),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds per LLM request."),
    retries: int = typer.Option(2, "--retries", help="Retries per LLM request."),
    seed: int = typer.Option(0, "--seed"),
    json: bool = JSON_OPTION,
) -> None:
    """Explain nodes and score the explanations by simulation (offline token statistics by
    default; an LLM with --llm-url)."""
    from lenscope.artifacts import lenscope_home
    from lenscope.explain import LLMConfig, LLMExplainer, OfflineExplainer, explain_records
    from lenscope.records import open_records

    m = _load(model, "cpu")
    recs = open_records(records, m, model)
    ids = [i.strip() for x in (nodes or []) for i in x.split(",") if i.strip()] or None
    if limit is not None:
        if limit < 1:
            raise InputError("--limit must be at least 1")
        ids = (ids or recs.node_ids())[:limit]
    if llm_url:
        key = llm_key or os.environ.get("LENSCOPE_LLM_KEY") or os.environ.get("OPENAI_API_KEY")
        cfg = LLMConfig(
            llm_url,
            llm_model,
            key,
            timeout=timeout,
            retries=retries,
            cache_dir=lenscope_home() / "cache" / "llm",
        )
        explainer: OfflineExplainer | LLMExplainer = LLMExplainer(cfg)
    else:
        explainer = OfflineExplainer()
    summary = explain_records(recs, explainer, ids, seed=seed, progress=not json)
    if json:
        print_json(summary)
        return
    score = "n/a" if summary.mean_score is None else f"{summary.mean_score:.3f}"
    ctrl = "n/a" if summary.mean_control is None else f"{summary.mean_control:.3f}"
    console.print(
        f"{summary.explainer} ({summary.label}): {summary.ok} explained, "
        f"{summary.failed} failed; mean score {score} (shuffled control {ctrl})"
    )
    if summary.failed:
        console.print(f"[yellow]first failure:[/] {summary.first_error}")
    console.print(f"written to {summary.path}")


def register(app: typer.Typer) -> None:
    app.command("harvest")(harvest_cmd)
    app.command("show")(show_cmd)
    app.command("explain")(explain_cmd)
