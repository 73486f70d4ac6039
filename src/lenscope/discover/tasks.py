"""Tasks: JSONL rows {clean, corrupted, answer, wrong} plus a metric, shipped or brought by path.

A row's prompts are text (tokenized with the model's tokenizer, BOS prepended as the model does)
or lists of token ids; `answer` and `wrong` are text that must be exactly one token, or a token
id. The metric reads the last position of the clean prompt:

- `logit_diff`: logit(answer) - logit(wrong), the mean over rows;
- `prob`: the probability of the answer, the mean over rows;
- `kl`: minus the KL divergence from the full model's next-token distribution on the clean
  prompt (0 for the full model, lower when ablating hurts).

Shipped tasks live in `assets/tasks/<name>/` (`manifest.json` naming the model the task was
written for, its accuracy and mean logit difference there, and `rows.jsonl`); they are found by
short name (`induction`, `brackets`, `self-assign`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import torch
from torch import Tensor

from lenscope.artifacts import read_manifest, shipped_dir
from lenscope.errors import InputError
from lenscope.model.transformer import HookedTransformer

Metric = Literal["logit_diff", "prob", "kl"]
METRICS: tuple[Metric, ...] = ("logit_diff", "prob", "kl")
TASK_KIND = "task"
TASK_SCHEMA = 1
ROWS_FILE = "rows.jsonl"
MAX_ROWS = 100_000


@dataclass
class CircuitTaskRow:
    clean: list[int]
    corrupted: list[int]
    answer: int
    wrong: int


@dataclass
class CircuitTask:
    """A task tokenized for one model."""

    name: str
    rows: list[CircuitTaskRow]
    metric: Metric = "logit_diff"
    model: str | None = None  # the model the task was written for (shipped tasks), if known
    description: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # the manifest's data (accuracy, ...)

    def head(self, n: int) -> CircuitTask:
        """The first n rows (all when n is larger)."""
        return CircuitTask(
            self.name, self.rows[:n], self.metric, self.model, self.description, self.info
        )


@dataclass
class CircuitTaskInfo:
    """A shipped task, as listed: its short name, model, size and how well the model does it."""

    name: str
    model: str
    description: str
    n_rows: int
    accuracy: float | None
    mean_logit_diff: float | None
    path: str


def tasks_dir() -> Path:
    return shipped_dir("assets") / "tasks"


def list_tasks(model: str | None = None) -> list[CircuitTaskInfo]:
    """The shipped tasks (only those written for `model` when given)."""
    out: list[CircuitTaskInfo] = []
    root = tasks_dir()
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        if not (d / "manifest.json").is_file():
            continue
        data = read_manifest(d, TASK_KIND).data
        if model is not None and data.get("model") != model:
            continue
        out.append(
            CircuitTaskInfo(
                d.name,
                str(data.get("model", "")),
                str(data.get("description", "")),
                int(data.get("n_rows", 0)),
                _opt_float(data.get("accuracy")),
                _opt_float(data.get("mean_logit_diff")),
                str(d),
            )
        )
    return out


def _opt_float(x: object) -> float | None:
    return float(x) if isinstance(x, (int, float)) else None


def resolve_task(name_or_path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The rows file and manifest data of a shipped task name, a task directory or a JSONL file."""
    s = str(name_or_path)
    if not s:
        raise InputError("no task given: name a shipped task or give a JSONL file")
    p = Path(s).expanduser()
    if p.is_file():
        return p, {}
    if p.is_dir():
        if not (p / "manifest.json").is_file():
            rows = p / ROWS_FILE
            if rows.is_file():
                return rows, {}
            raise InputError(f"{p} is a directory without a task manifest.json or {ROWS_FILE}")
        return p / ROWS_FILE, read_manifest(p, TASK_KIND, TASK_SCHEMA).data
    shipped = tasks_dir() / s
    if "/" not in s and (shipped / "manifest.json").is_file():
        return shipped / ROWS_FILE, read_manifest(shipped, TASK_KIND, TASK_SCHEMA).data
    names = ", ".join(t.name for t in list_tasks()) or "none"
    raise InputError(f"no task {s!r}: not a file, a task directory or a shipped task ({names})")


def load_task(
    name_or_path: str | Path,
    model: HookedTransformer,
    metric: Metric | None = None,
    *,
    check_model: bool = True,
) -> CircuitTask:
    """Read and tokenize a task for `model`; every mistake is one `InputError` line."""
    path, info = resolve_task(name_or_path)
    want = info.get("model")
    if check_model and isinstance(want, str) and want != model.cfg.name:
        raise InputError(
            f"task {info.get('name', path.parent.name)!r} was written for {want}, not "
            f"{model.cfg.name}; pick a task of {model.cfg.name} (`lenscope discover "
            f"{model.cfg.name} --list-tasks`) or bring your own JSONL"
        )
    chosen = metric or cast(Metric, info.get("metric", "logit_diff"))
    if chosen not in METRICS:
        raise InputError(f"metric {chosen!r} is not one of {', '.join(METRICS)}")
    name = str(info.get("name") or (path.parent.name if path.name == ROWS_FILE else path.stem))
    rows = [_row(model, raw, path, i) for i, raw in _read_jsonl(path)]
    if not rows:
        raise InputError(f"task {name!r} ({path}) has no rows")
    return CircuitTask(
        name,
        rows,
        chosen,
        want if isinstance(want, str) else None,
        str(info.get("description", "")),
        info,
    )


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read task file {path}: {e}") from None
    out: list[tuple[int, dict[str, Any]]] = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path} line {i} is not JSON ({e.msg})") from None
        if not isinstance(raw, dict):
            raise InputError(f"{path} line {i}: a row is a JSON object")
        out.append((i, raw))
        if len(out) > MAX_ROWS:
            raise InputError(f"{path} has more than {MAX_ROWS} rows; split it")
    return out


_KEYS = ("clean", "corrupted", "answer", "wrong")


def _row(model: HookedTransformer, raw: dict[str, Any], path: Path, line: int) -> CircuitTaskRow:
    where = f"{path} line {line}"
    missing = [k for k in _KEYS if k not in raw]
    if missing:
        raise InputError(f"{where}: missing {', '.join(missing)} (a row has {', '.join(_KEYS)})")
    clean = _prompt(model, raw["clean"], f"{where}: clean")
    corrupted = _prompt(model, raw["corrupted"], f"{where}: corrupted")
    return CircuitTaskRow(
        clean,
        corrupted,
        _token(model, raw["answer"], f"{where}: answer"),
        _token(model, raw["wrong"], f"{where}: wrong"),
    )


def _prompt(model: HookedTransformer, x: object, what: str) -> list[int]:
    v, n_ctx = model.cfg.d_vocab, model.cfg.n_ctx
    if isinstance(x, str):
        if not x:
            raise InputError(f"{what} prompt is empty")
        tok = model.tokenizer
        if tok is None:
            raise InputError(f"{what}: {model.cfg.name} has no tokenizer; give token ids")
        ids = tok.encode(x, prepend_bos=model.cfg.default_prepend_bos)
    elif (
        isinstance(x, list) and x and all(isinstance(i, int) and not isinstance(i, bool) for i in x)
    ):
        ids = list(x)
        bad = [i for i in ids if not 0 <= i < v]
        if bad:
            raise InputError(f"{what}: token id {bad[0]} is outside the vocabulary (0..{v - 1})")
    else:
        raise InputError(f"{what} must be text or a non-empty list of token ids")
    if len(ids) > n_ctx:
        raise InputError(f"{what} has {len(ids)} tokens; {model.cfg.name} reads at most {n_ctx}")
    return ids


def _token(model: HookedTransformer, x: object, what: str) -> int:
    v = model.cfg.d_vocab
    if isinstance(x, int) and not isinstance(x, bool):
        if not 0 <= x < v:
            raise InputError(f"{what} token id {x} is outside the vocabulary (0..{v - 1})")
        return x
    if not isinstance(x, str) or not x:
        raise InputError(f"{what} must be one token: non-empty text or a token id")
    tok = model.tokenizer
    if tok is None:
        raise InputError(f"{what}: {model.cfg.name} has no tokenizer; give a token id")
    ids = tok.encode(x)
    if len(ids) != 1:
        parts = " + ".join(repr(tok.token_str(i)) for i in ids) or "nothing"
        raise InputError(
            f"{what} {x!r} is {len(ids)} tokens ({parts}); an answer must be exactly one token"
        )
    return ids[0]


# ---- batches and the metric ------------------------------------------------------------------
@dataclass
class TaskBatch:
    """A task's rows as right-padded tensors."""

    clean: Tensor  # [rows, pos]
    clean_len: Tensor  # [rows]
    corrupted: Tensor  # [rows, pos']
    corrupted_len: Tensor  # [rows]
    answer: Tensor  # [rows]
    wrong: Tensor  # [rows]

    @property
    def aligned(self) -> bool:
        """Whether every row's clean and corrupted prompts have the same length."""
        return bool((self.clean_len == self.corrupted_len).all())


def _pad(seqs: list[list[int]], device: torch.device) -> tuple[Tensor, Tensor]:
    n = max(len(s) for s in seqs)
    out = torch.zeros(len(seqs), n, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out.to(device), torch.tensor([len(s) for s in seqs], device=device)


def batch_of(task: CircuitTask, device: torch.device) -> TaskBatch:
    clean, clean_len = _pad([r.clean for r in task.rows], device)
    corr, corr_len = _pad([r.corrupted for r in task.rows], device)
    ans = torch.tensor([r.answer for r in task.rows], device=device)
    wrong = torch.tensor([r.wrong for r in task.rows], device=device)
    return TaskBatch(clean, clean_len, corr, corr_len, ans, wrong)


def last_logits(logits: Tensor, lengths: Tensor) -> Tensor:
    """[rows, pos, vocab] -> the logits at each row's last real position [rows, vocab]; logits
    computed at that position only ([rows, 1, vocab]) are taken as they are."""
    if logits.shape[1] == 1:
        return logits[:, 0]
    return logits[torch.arange(logits.shape[0], device=logits.device), lengths - 1]


def metric_value(
    logits: Tensor, batch: TaskBatch, metric: Metric, clean_logprobs: Tensor | None = None
) -> Tensor:
    """The task metric (a scalar, mean over rows; higher = the task done better)."""
    last = last_logits(logits, batch.clean_len).float()
    rows = torch.arange(last.shape[0], device=last.device)
    if metric == "logit_diff":
        return (last[rows, batch.answer] - last[rows, batch.wrong]).mean()
    if metric == "prob":
        return last.softmax(-1)[rows, batch.answer].mean()
    if clean_logprobs is None:
        raise ValueError("the kl metric needs the full model's log-probabilities")
    lp = last.log_softmax(-1)
    return -(clean_logprobs.exp() * (clean_logprobs - lp)).sum(-1).mean()


def per_row_logit_diff(logits: Tensor, batch: TaskBatch) -> Tensor:
    last = last_logits(logits, batch.clean_len).float()
    rows = torch.arange(last.shape[0], device=last.device)
    return last[rows, batch.answer] - last[rows, batch.wrong]
