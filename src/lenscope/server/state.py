"""What one server holds: its model, the debugger over it, SAEs, records, caches and lanes.

Everything a request may name (nodes, explainers) is looked up here; nothing in a request is ever
turned into a file path. The model's own tuned lens (shipped or trained, matched by fingerprint)
is loaded once at startup. An LLM explainer, when configured, runs on its own lane: a slow endpoint
holds those workers only, never the record queries of the node pages. Records are read through one DuckDB connection behind a lock (DuckDB
connections are not safe to share between threads); explanations generated on request are kept
in a bounded in-memory cache.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lenscope.attribution.api import Debugger
from lenscope.errors import InputError, LenscopeError
from lenscope.explain import Explainer, LLMExplainer, OfflineExplainer
from lenscope.model import HookedTransformer, fingerprint
from lenscope.records import Explanation, NodeRecord, Records
from lenscope.server.config import ExplainerName, ServerConfig
from lenscope.server.errors import ApiError
from lenscope.server.lanes import Lane

if TYPE_CHECKING:
    from lenscope.lens import TunedLens

T = TypeVar("T")
EXPLANATION_CACHE = 4096


@dataclass
class NamedSAE:
    name: str
    sae: Any  # lenscope.sae.SparseAutoencoder (or any SAE the debugger accepts)
    hook: str
    d_sae: int


@dataclass
class NamedTunedLens:
    name: str
    lens: TunedLens  # checked against the served model when loaded


@dataclass
class ServerState:
    config: ServerConfig
    model: HookedTransformer
    saes: list[NamedSAE] = field(default_factory=list)
    records: Records | None = None
    records_note: str = ""
    tuned: NamedTunedLens | None = None
    started: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.model.eval()
        self.debugger = Debugger(self.model, [s.sae for s in self.saes])
        self.fingerprint = fingerprint(self.model)
        c = self.config
        self.heavy = Lane("heavy", c.workers, c.max_pending, c.queue_timeout)
        self.light = Lane("light", 2, c.max_pending, c.queue_timeout)
        self.explainers: dict[ExplainerName, Explainer] = {"offline": OfflineExplainer()}
        self.llm_lane: Lane | None = None
        if c.llm is not None:
            self.explainers["llm"] = LLMExplainer(c.llm.client_config())
            self.llm_lane = Lane("llm", 2, c.max_pending, c.queue_timeout)
        self._records_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._explained: OrderedDict[tuple[str, str], Explanation] = OrderedDict()
        self._memo: dict[str, Any] = {}
        self._memo_locks: dict[str, threading.Lock] = {}

    # ---- construction -----------------------------------------------------------------------------
    @classmethod
    def load(cls, config: ServerConfig, log: Callable[[str], None] = print) -> ServerState:
        """Load the model, SAEs and records named on the command line (trusted input)."""
        from lenscope.model import load_model

        config.check()
        model = load_model(config.model, device=config.device)  # SAEs and lens follow it
        names = config.saes or (matching_saes(model, log) if config.auto else [])
        saes = [load_named_sae(n, model) for n in names]
        records, note = open_server_records(config, model, saes, log)
        if config.tuned is not None:
            from lenscope.lens import load_tuned_lens

            lens = load_tuned_lens(config.tuned, model).eval()  # must open: the user named it
            tuned: NamedTunedLens | None = NamedTunedLens(Path(config.tuned).name, lens)
        else:
            tuned = server_tuned_lens(model, log) if config.auto else None
        return cls(config, model, saes, records, note, tuned)

    @property
    def lanes(self) -> list[Lane]:
        return [self.heavy, self.light] + ([self.llm_lane] if self.llm_lane else [])

    def explainer(self, name: ExplainerName) -> tuple[Explainer, Lane]:
        """The named explainer and the lane it runs on; `InputError` when not configured."""
        if name not in self.explainers:
            raise InputError(
                f"this server has no {name!r} explainer; restart it with `lenscope serve "
                f"{self.config.model} --llm-url URL --llm-model NAME` for LLM explanations, or "
                "use the offline explainer"
            )
        lane = self.llm_lane if name == "llm" and self.llm_lane is not None else self.light
        return self.explainers[name], lane

    def need_tuned(self) -> NamedTunedLens:
        """The served model's tuned lens; `InputError` (400) when the server has none."""
        if self.tuned is None:
            name = self.config.model
            how = (
                "started with --no-auto"
                if not self.config.auto
                else f"train one with `lenscope lens train-tuned {name}` and restart the server"
            )
            raise InputError(
                f"this server has no tuned lens for {self.model.cfg.name} ({how}); "
                "ask for the logit lens (tuned: false)"
            )
        return self.tuned

    # ---- records ------------------------------------------------------------------------------------
    def need_records(self) -> Records:
        if self.records is None:
            raise ApiError(
                404,
                self.records_note
                or f"no records are loaded for {self.model.cfg.name}; build them with "
                f"`lenscope harvest {self.config.model}` and restart the server",
                "NoRecords",
            )
        return self.records

    def with_records(self, fn: Callable[[Records], T]) -> T:
        recs = self.need_records()
        with self._records_lock:
            return fn(recs)

    def record(self, node_id: str) -> NodeRecord:
        rec = self.with_records(lambda r: r.node(node_id))
        extra = self.cached_explanations(rec.node_id)
        have = {(e.explainer, e.node_id) for e in rec.explanations}
        rec.explanations += [e for e in extra if (e.explainer, e.node_id) not in have]
        return rec

    # ---- explanation cache ----------------------------------------------------------------------------
    def cached_explanations(self, node_id: str) -> list[Explanation]:
        with self._cache_lock:
            return [e for (n, _), e in self._explained.items() if n == node_id]

    def cached_explanation(self, node_id: str, explainer: str) -> Explanation | None:
        with self._cache_lock:
            return self._explained.get((node_id, explainer))

    def cache_explanation(self, e: Explanation) -> None:
        with self._cache_lock:
            self._explained[(e.node_id, e.explainer)] = e
            self._explained.move_to_end((e.node_id, e.explainer))
            while len(self._explained) > EXPLANATION_CACHE:
                self._explained.popitem(last=False)

    # ---- memoised views of the weights (circuits) ---------------------------------------------------
    def memo(self, key: str, make: Callable[[], T]) -> T:
        """Compute once per server (weights never change while it runs); concurrent askers wait."""
        with self._cache_lock:
            lock = self._memo_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._memo:
                self._memo[key] = make()
            value: T = self._memo[key]
            return value

    def close(self) -> None:
        for lane in self.lanes:
            lane.shutdown()
        if self.records is not None:
            self.records.close()
            self.records = None
        self._memo.clear()


def load_named_sae(name: str, model: HookedTransformer) -> NamedSAE:
    from lenscope.sae import load_sae

    sae = load_sae(name, device=model.device)
    hook = sae.cfg.hook_name
    return NamedSAE(Path(name).name, sae, hook, int(sae.cfg.d_sae))


def matching_saes(model: HookedTransformer, log: Callable[[str], None]) -> list[str]:
    """Shipped or trained SAEs made on exactly this model (its fingerprint), at residual-stream
    hooks, one per hook (shipped first): what `lenscope serve MODEL` splices in by default."""
    from lenscope.sae import saes_for_model

    chosen = saes_for_model(fingerprint(model), residual_only=True)
    for path in chosen:
        log(f"splicing the SAE {path.name}; --sae picks others")
    return [str(p) for p in chosen]


def server_tuned_lens(
    model: HookedTransformer, log: Callable[[str], None]
) -> NamedTunedLens | None:
    """The model's own tuned lens (`lenscope.lens.default_tuned_lens`, keeping its name), or
    None; a broken one is left out with a logged reason rather than stopping the server."""
    from lenscope.lens import find_tuned_lens, load_tuned_lens

    try:
        path = find_tuned_lens(model)
        if path is None:
            return None
        lens = load_tuned_lens(path, model).eval()
    except LenscopeError as e:
        log(f"tuned lens not used: {e}")
        return None
    return NamedTunedLens(path.name, lens)


def open_server_records(
    config: ServerConfig,
    model: HookedTransformer,
    saes: Sequence[NamedSAE],
    log: Callable[[str], None],
) -> tuple[Records | None, str]:
    """Explicit `--records` must open; the default place is used only when it matches."""
    from lenscope.records import default_records_dir

    if config.records is not None:
        return Records(config.records, model), ""
    path = default_records_dir(config.model)
    if not config.auto:
        return None, f"no records given; start the server with --records {path}"
    if not (path / "manifest.json").is_file():
        return None, (
            f"no records for {model.cfg.name} at {path}; build them with "
            f"`lenscope harvest {config.model}` (node pages need them) and restart the server"
        )
    try:
        recs = Records(path, model)
    except LenscopeError as e:
        log(f"records at {path} not used: {e}")
        return None, str(e)
    return recs, ""
