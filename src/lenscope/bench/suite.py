"""The bench over many dictionaries: core metrics and sparse probing per dictionary, each result
written to `out/<name>-<digest>.json` as soon as it is done, so a killed run resumes where it was
(a result is reused when its dictionary digest, model and settings match).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lenscope.bench.absorption import AbsorptionResult, TPPResult, keyword_absorption, kind_tpp
from lenscope.bench.codeset import CodeTokens, binary_tasks, code_tokens
from lenscope.bench.core import CoreMetrics, core_metrics
from lenscope.bench.probing import ProbeTask, ProbingResult, check_ks, sparse_probing
from lenscope.data import iter_eval_batches
from lenscope.data.stream import TokenStream, separator
from lenscope.errors import InputError
from lenscope.jsonable import JsonResult, to_jsonable
from lenscope.model import HookedTransformer, fingerprint
from lenscope.model.capture import capture_all
from lenscope.sae.dictionary import Dictionary, check_compatible

Tick = Callable[[], None]
SCHEMA = 1


@dataclass(frozen=True)
class BenchConfig:
    """What the bench reads: `core_tokens` held-out tokens for the core metrics, `probe_tokens`
    labelled code tokens for probing, windows of `ctx` (default: the model's context)."""

    core_tokens: int = 16384
    probe_tokens: int = 16384
    ctx: int | None = None
    batch_size: int = 8
    ks: tuple[int, ...] = (1, 2, 5)
    per_class: int = 1000
    min_per_class: int = 20
    probing: bool = True  # sparse probing, absorption and TPP (they share the labelled tokens)
    tpp_k: int = 10
    seed: int = 0


@dataclass
class DictionaryBench(JsonResult):
    name: str
    digest: str
    model: str
    hook_in: str
    hooks_out: list[str]
    kind: str  # "sae" | "transcoder"
    architecture: str
    k: int | None
    d_sae: int
    core: CoreMetrics
    probing: ProbingResult | None
    absorption: AbsorptionResult | None = None
    tpp: TPPResult | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchResult(JsonResult):
    model: str
    out: str
    dictionaries: list[DictionaryBench]
    reused: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)


def describe(dic: Dictionary) -> tuple[str, str, int | None]:
    """(kind, architecture, k) of a dictionary, from what its source says of itself."""
    cfg = getattr(dic.source, "cfg", None)
    kind = "sae" if dic.is_sae else "transcoder"
    arch = getattr(cfg, "architecture", None) or getattr(cfg, "activation", None) or "unknown"
    k = getattr(cfg, "k", None)
    return kind, str(arch), k if isinstance(k, int) else None


def slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).name or name).strip("-.")
    return s or "dictionary"


def settings_of(
    model: HookedTransformer, cfg: BenchConfig, ctx: int, source: str
) -> dict[str, Any]:
    d = to_jsonable(asdict(cfg))
    d.update(ctx=ctx, model_fingerprint=fingerprint(model), data=source, schema=SCHEMA)
    return dict(d)


def _cached(path: Path, digest: str, settings: dict[str, Any]) -> DictionaryBench | None:
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text("utf-8"))
        if d.get("digest") != digest or d.get("settings") != settings:
            return None
        return _from_json(d)
    except (ValueError, KeyError, TypeError):
        return None  # a torn or old file: compute again


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def _from_json(d: dict[str, Any]) -> DictionaryBench:
    core_d: dict[str, Any] = {
        k: (_num(v) if k != "max_encoder_cossim" and k != "n_tokens" else v)
        for k, v in d["core"].items()
    }
    core = CoreMetrics(**core_d)
    pr = d.get("probing")
    probing = None
    if pr is not None:
        tasks = [ProbeTask(**{**t, "full_accuracy": _num(t["full_accuracy"])}) for t in pr["tasks"]]
        probing = ProbingResult(
            pr["ks"],
            tasks,
            _num(pr["mean_full_accuracy"]),
            pr["mean_sparse_accuracy"],
            pr["skipped"],
        )
    return DictionaryBench(
        d["name"],
        d["digest"],
        d["model"],
        d["hook_in"],
        list(d["hooks_out"]),
        d["kind"],
        d["architecture"],
        d["k"],
        d["d_sae"],
        core,
        probing,
        _absorption(d.get("absorption")),
        _tpp(d.get("tpp")),
        d["settings"],
    )


def _absorption(a: dict[str, Any] | None) -> AbsorptionResult | None:
    if a is None:
        return None
    return AbsorptionResult(
        a["parent"],
        a["main_latents"],
        a["n_tokens"],
        _num(a["mean_absorption_fraction"]),
        _num(a["full_absorption_rate"]),
        a["by_child"],
    )


def _tpp(t: dict[str, Any] | None) -> TPPResult | None:
    if t is None:
        return None
    return TPPResult(t["k"], t["classes"], t["drops"], _num(t["tpp"]))


def _token_texts(model: HookedTransformer, code: CodeTokens) -> list[str]:
    tok = model.tokenizer
    assert tok is not None
    ids = code.windows.reshape(-1).tolist()
    text = {i: tok.decode([i]) for i in set(ids)}
    return [text[i] for i in ids]


def _write(path: Path, res: DictionaryBench) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(to_jsonable(res), indent=1), "utf-8")
    tmp.replace(path)  # atomic: a kill leaves the old file or the new one, never half


def probe_inputs(
    model: HookedTransformer,
    dic: Dictionary,
    code: CodeTokens,
    batch_size: int,
    acts: dict[str, Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(activations [n, d_in] at hook_in, activations [n, d_out] at the first hook it writes,
    latents [n, d_sae]) of every labelled window; `acts` keeps the activations per hook for
    the next dictionary reading the same hooks."""
    acts = {} if acts is None else acts
    hooks = list(dict.fromkeys((dic.hook_in, dic.hooks_out[0])))
    need = [h for h in hooks if h not in acts]
    if need:
        parts: dict[str, list[Tensor]] = {h: [] for h in need}
        for a in range(0, code.windows.shape[0], batch_size):
            w = code.windows[a : a + batch_size].to(model.device)
            got = capture_all(model, w, need)
            for h in need:
                parts[h].append(got[h].reshape(-1, got[h].shape[-1]).float().cpu())
        acts.update({h: torch.cat(v) for h, v in parts.items()})
    x, y = acts[dic.hook_in], acts[dic.hooks_out[0]]
    lats = [
        dic.latents(x[a : a + 4096].to(model.device)).float().cpu()
        for a in range(0, x.shape[0], 4096)
    ]
    return x, y, torch.cat(lats)


def bench_one(
    model: HookedTransformer,
    name: str,
    dic: Dictionary,
    streams: TokenStream,
    cfg: BenchConfig,
    *,
    code: CodeTokens | None = None,
    acts: dict[str, Tensor] | None = None,
    tick: Tick | None = None,
) -> DictionaryBench:
    """The bench of one dictionary (no caching; see `run_bench`)."""
    ctx = cfg.ctx or model.cfg.n_ctx
    n_batches = max(1, math.ceil(cfg.core_tokens / (ctx * cfg.batch_size)))
    batches = list(iter_eval_batches(streams.val, cfg.batch_size, ctx, n_batches))
    core = core_metrics(model, dic, batches, separator=separator(model), tick=tick)
    probing = absorption = tpp = None
    if cfg.probing:
        code = code or code_tokens(model, streams, n_tokens=cfg.probe_tokens, ctx=ctx)
        x, y, lats = probe_inputs(model, dic, code, cfg.batch_size, acts)
        tasks = {k: v.reshape(-1) for k, v in binary_tasks(code.labels).items()}
        probing = sparse_probing(
            x,
            lats,
            tasks,
            cfg.ks,
            per_class=cfg.per_class,
            min_per_class=cfg.min_per_class,
            seed=cfg.seed,
        )
        kinds = code.labels["kind"].reshape(-1)
        texts = _token_texts(model, code)
        absorption = keyword_absorption(
            dic,
            x,
            y,
            lats,
            kinds,
            texts,
            per_class=cfg.per_class,
            min_per_class=cfg.min_per_class,
            seed=cfg.seed,
        )
        tpp = kind_tpp(
            dic,
            x,
            y,
            lats,
            kinds,
            k=cfg.tpp_k,
            per_class=cfg.per_class,
            min_per_class=cfg.min_per_class,
            seed=cfg.seed,
        )
        if tick is not None:
            tick()
    kind, arch, k = describe(dic)
    return DictionaryBench(
        name,
        dic.digest(),
        model.cfg.name,
        dic.hook_in,
        list(dic.hooks_out),
        kind,
        arch,
        k,
        dic.d_sae,
        core,
        probing,
        absorption,
        tpp,
    )


def run_bench(
    model: HookedTransformer,
    dictionaries: Sequence[tuple[str, Any]],
    streams: TokenStream,
    out: Path,
    cfg: BenchConfig = BenchConfig(),
    *,
    strict: bool = True,
    fresh: bool = False,
    progress: Callable[[str, int], Tick] | None = None,
    log: Callable[[str], None] = lambda _s: None,
) -> BenchResult:
    """Bench every (name, dictionary) on `model`; per-dictionary results are cached in `out`.
    `progress(name, steps)` gives the tick of one dictionary's progress bar."""
    if not dictionaries:
        raise InputError("the bench needs at least one dictionary")
    dics = [(n, Dictionary.of(d)) for n, d in dictionaries]
    for n, dic in dics:
        try:
            check_compatible(model, dic, strict)
        except InputError as e:
            raise InputError(f"{n}: {e}") from None
        if cfg.probing:
            check_ks(cfg.ks, dic.d_sae)
    ctx = cfg.ctx or model.cfg.n_ctx
    settings = settings_of(model, cfg, ctx, streams.source)
    code: CodeTokens | None = None
    acts: dict[str, Tensor] = {}  # probing activations per hook, shared by its dictionaries
    results: list[DictionaryBench] = []
    reused: list[str] = []
    seen: set[str] = set()
    for n, dic in dics:
        stem = slug(n)
        while stem in seen:
            stem += "_"
        seen.add(stem)
        path = out / f"{stem}.json"
        digest = dic.digest()
        old = None if fresh else _cached(path, digest, settings)
        if old is not None:
            log(f"{n}: reusing {path}")
            results.append(old)
            reused.append(n)
            continue
        if cfg.probing and code is None:
            code = code_tokens(model, streams, n_tokens=cfg.probe_tokens, ctx=ctx)
        n_batches = max(1, math.ceil(cfg.core_tokens / (ctx * cfg.batch_size)))
        tick = progress(n, n_batches + int(cfg.probing)) if progress is not None else None
        res = bench_one(model, n, dic, streams, cfg, code=code, acts=acts, tick=tick)
        res.settings = settings
        _write(path, res)
        results.append(res)
    return BenchResult(model.cfg.name, str(out), results, reused)
