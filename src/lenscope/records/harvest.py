"""`harvest`: stream a corpus through a model once and write the records of every node.

The rows are cut into shards of `shard_rows`; rank r of N (torchrun) runs the shards left to do
with index = r mod N, in batches of `batch_rows`. All groups of nodes are updated inside forward
hooks, vectorised over nodes, and the forward stops after the last block anything reads. After
each shard a process saves its cumulative state; a killed harvest resumes from there. When every
shard is done, rank 0 merges all states (exactly) and writes the records artifact.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lenscope.errors import ArtifactError
from lenscope.jsonable import JsonResult
from lenscope.model import HookedTransformer, fingerprint
from lenscope.model.view import isolated
from lenscope.records.batch_stats import Workspace
from lenscope.records.capture import QK, Acts, group_hooks, last_layer
from lenscope.records.config import (
    SCHEMA_VERSION,
    Group,
    HarvestConfig,
    dictionaries,
    node_groups,
)
from lenscope.records.corpus import Corpus, open_corpus, prepare_corpus
from lenscope.records.parallel import barrier, init_distributed, over_ranks
from lenscope.records.prio import QUANTILE_STREAM, RANDOM_STREAM, ROW_STREAM, priorities
from lenscope.records.shards import (
    check_identity,
    done_shards,
    load_state,
    new_state_path,
    save_state,
    state_files,
    work_dir,
)
from lenscope.records.sparse import SparseRows
from lenscope.records.state import BatchInfo, Calibration, GroupState, SharedState, calibrate
from lenscope.sae.dictionary import Dictionary

CALIB_TOKENS = 4096


@dataclass
class HarvestResult(JsonResult):
    path: Path
    n_tokens: int
    n_nodes: int
    seconds: float
    tokens_per_s: float
    shards_run: int
    shards_total: int
    up_to_date: bool = False


class _Run:
    """The groups' states and the hook callback for one process."""

    def __init__(
        self,
        model: HookedTransformer,
        groups: list[Group],
        saes: list[Dictionary],
        cfg: HarvestConfig,
        ctx: int,
    ) -> None:
        self.model, self.groups, self.saes, self.cfg, self.ctx = model, groups, saes, cfg, ctx
        self.dev = model.device
        self.offsets = torch.arange(-cfg.before, cfg.after + 1, device=self.dev)
        self.cal: dict[str, Calibration] = {}
        self.states: dict[str, GroupState] = {}
        self.shared = SharedState.empty(cfg.random_k, model.cfg.d_vocab, self.dev)
        self.info: BatchInfo | None = None
        self.ws = Workspace()  # scratch buffers shared by every group and batch
        self.stop = last_layer(groups) + 1

    def calibrate(self, rows: np.ndarray) -> None:
        """Per-node constants from the first rows: one forward, identical on every rank."""
        cfg = self.cfg

        def fn(g: Group, x: Acts, _: QK | None) -> None:
            if isinstance(x, SparseRows):  # densify only the tokens calibration reads
                t = x.shape[0]
                every = torch.arange(0, t, max(1, t // CALIB_TOKENS), device=x.idx.device)
                xt = x.index_select(0, every).T
            else:
                rows = x.reshape(-1, g.size)
                xt = rows[:: max(1, rows.shape[0] // CALIB_TOKENS)].T
            self.cal[g.name] = calibrate(xt, cfg.quantile_levels, cfg.hist_bins)

        self._forward(rows, fn)
        self.states = {g.name: self.empty(g) for g in self.groups}

    def empty(self, g: Group) -> GroupState:
        c = self.cfg
        st = GroupState(
            g.size,
            self.cal[g.name],
            c.top_k,
            c.random_k,
            c.per_quantile,
            c.window,
            c.hist_bins,
            g.kind == "head",
        )
        if g.kind == "head":
            st.sliding = self.model.cfg.window(g.layer)
        return st

    def _forward(self, rows: np.ndarray, fn: Callable[[Group, Acts, QK | None], None]) -> None:
        tokens = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(self.dev)
        with (
            torch.no_grad(),
            self.model.hooks(fwd=group_hooks(self.model, self.groups, self.saes, fn)),
        ):
            self.model(tokens, stop_at_layer=self.stop)
        self.shared.tok_count += torch.bincount(tokens.view(-1), minlength=self.model.cfg.d_vocab)

    def _update(self, g: Group, x: Acts, qk: QK | None) -> None:
        assert self.info is not None
        rows = x if isinstance(x, SparseRows) else x.reshape(-1, g.size)
        self.states[g.name].update(rows, self.info, qk, self.model.cfg.attn_scale)

    def batch(self, rows: np.ndarray, row0: int) -> None:
        cfg, ctx, dev = self.cfg, self.ctx, self.dev
        b = rows.shape[0]
        base = row0 * ctx
        pos = np.arange(base, base + b * ctx, dtype=np.int64)
        r_slots = r_tok = torch.zeros(0, dtype=torch.long, device=dev)
        if cfg.random_k:
            rkey = torch.from_numpy(priorities(cfg.seed, RANDOM_STREAM, pos)).to(dev)
            r_slots, r_tok = self.shared.select_random(rkey, base, cfg.random_k)
        sub: torch.Tensor | None = None
        if cfg.sample_rate < 1.0:
            rowp = priorities(cfg.seed, ROW_STREAM, np.arange(row0, row0 + b))
            chosen = np.flatnonzero(rowp < cfg.sample_rate)
            idx = (chosen[:, None] * ctx + np.arange(ctx)).reshape(-1)
            sub = torch.from_numpy(idx).to(dev)
            qkey = priorities(cfg.seed, QUANTILE_STREAM, base + idx)
        else:
            qkey = priorities(cfg.seed, QUANTILE_STREAM, pos)
        self.info = BatchInfo(
            base,
            ctx,
            self.offsets,
            sub,
            torch.from_numpy(qkey).to(dev),
            r_slots,
            r_tok,
            self.ws,
            context_only=min(cfg.context_only, ctx - 1),
        )
        self._forward(rows, self._update)
        self.info = None

    def merge(self, groups: dict[str, GroupState], shared: SharedState) -> None:
        """Fold another process's (or run's) state in; shards must not overlap."""
        if self.shared.done & shared.done:
            raise ArtifactError("two harvest states cover the same shard; delete the work dir")
        a, b = self.shared, shared
        slots, cand = a.merge_random(b.r_key, b.r_pos)
        a.tok_count += b.tok_count
        a.n_tokens += b.n_tokens
        a.done |= b.done
        for name, st in self.states.items():
            st.merge(groups[name], slots, cand)


@isolated
def harvest(
    model: HookedTransformer,
    dest: Path | str,
    *,
    saes: Sequence[Any] = (),
    config: HarvestConfig | None = None,
    corpus: Sequence[str] | np.ndarray | None = None,
    progress: bool = True,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> HarvestResult:
    """Harvest the records of `model` (+ `saes`) into the artifact `dest`; resumable, torchrun-able.

    `corpus`: None (the default corpus), paths of text files / directories, one token dataset
    directory, or a 1-D array of token ids.
    """
    from lenscope.records.write import existing_identity, write_records

    cfg = config or HarvestConfig()
    cfg.validate(model)
    sae_list = dictionaries(saes)
    groups = node_groups(model, sae_list, cfg.mlp, cfg.heads)
    ctx = cfg.row_len(model)
    dest = Path(dest)
    identity: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model": fingerprint(model),
        "saes": [s.digest() for s in sae_list],
        "config": cfg.to_dict(),
        "corpus": _corpus_identity(corpus),
        "ctx": ctx,
    }
    n_nodes = sum(g.size for g in groups)
    if not force and existing_identity(dest) == identity:
        return HarvestResult(dest, 0, n_nodes, 0.0, 0.0, 0, 0, up_to_date=True)
    rank, world = init_distributed()
    work = work_dir(dest)
    if rank == 0:
        check_identity(work, identity, log)
        prepare_corpus(work, model, corpus, cfg.n_tokens, ctx, log)
    barrier(world)
    data = open_corpus(work)
    run = _Run(model, groups, sae_list, cfg, ctx)
    run.calibrate(data.rows[: min(cfg.calib_rows, len(data.rows))])
    run.shared = SharedState.empty(cfg.random_k, model.cfg.d_vocab, run.dev)
    n_shards = math.ceil(len(data.rows) / cfg.shard_rows)
    done: set[int] = set()
    for f in state_files(work):
        done |= done_shards(f)
    barrier(world)
    mine = [s for s in range(n_shards) if s not in done][rank::world]
    t0 = time.perf_counter()
    label = f"harvest (rank 0 of {world}: its shards)" if world > 1 else "harvest"
    tokens_run = _run_shards(run, data, mine, work, progress and rank == 0, label)
    seconds = time.perf_counter() - t0
    # every rank's tokens, over the slowest rank's time: the run's own figures, however the
    # shards fell to the ranks
    tokens_run = int(over_ranks(tokens_run, world))
    seconds = over_ranks(seconds, world, "max")
    barrier(world)
    run.states = {}  # merged from the saved states below
    if rank == 0:
        final = _Run(model, groups, sae_list, cfg, ctx)
        final.cal, final.shared = (
            run.cal,
            SharedState.empty(cfg.random_k, model.cfg.d_vocab, run.dev),
        )
        final.states = {g.name: final.empty(g) for g in groups}
        for f in state_files(work):
            final.merge(*load_state(f, final.states, final.shared))
        missing = sorted(set(range(n_shards)) - final.shared.done)
        if missing:
            raise ArtifactError(f"harvest shards {missing[:5]} were not run; run harvest again")
        write_records(
            dest,
            model,
            groups,
            sae_list,
            final.states,
            final.shared,
            final.cal,
            data,
            cfg,
            identity,
            log=log,
        )
        shutil.rmtree(work, ignore_errors=True)
    barrier(world)
    return HarvestResult(
        dest,
        tokens_run,
        n_nodes,
        seconds,
        tokens_run / seconds if seconds > 0 else 0.0,
        len(mine),
        n_shards,
    )


def _corpus_identity(corpus: Sequence[str] | np.ndarray | None) -> Any:
    if isinstance(corpus, np.ndarray):
        return {"array_sha256": hashlib.sha256(np.ascontiguousarray(corpus).tobytes()).hexdigest()}
    return [str(c) for c in corpus] if corpus else None


def _run_shards(
    run: _Run, data: Corpus, mine: list[int], work: Path, progress: bool, label: str = "harvest"
) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    cfg, ctx = run.cfg, run.ctx
    path = new_state_path(work)
    total = sum(min(cfg.shard_rows, len(data.rows) - s * cfg.shard_rows) for s in mine) * ctx
    cols = (
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} tokens  {task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    n = 0
    t0 = time.perf_counter()
    with Progress(*cols, console=Console(stderr=True), disable=not progress) as bar:
        task = bar.add_task("harvest", total=total, rate="")
        for s in mine:
            lo, hi = s * cfg.shard_rows, min((s + 1) * cfg.shard_rows, len(data.rows))
            for r in range(lo, hi, cfg.batch_rows):
                rows = np.asarray(data.rows[r : min(r + cfg.batch_rows, hi)])
                run.batch(rows, r)
                n += rows.size
                rate = n / max(time.perf_counter() - t0, 1e-9)
                bar.update(task, advance=rows.size, rate=f"{rate:,.0f} tok/s")
            for st in run.states.values():
                st.flush()
            run.shared.done.add(s)
            run.shared.n_tokens += (hi - lo) * ctx
            save_state(path, run.states, run.shared)
    return n
