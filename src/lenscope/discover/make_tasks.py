"""Build the shipped tasks offline from the tokenizer, and measure how well their model does them.

    python -m lenscope.discover.make_tasks [--out assets/tasks]

- `induction` (attn2): [BOS, r, r[:k]] with r random tokens from the model's frequency-ranked
  probe pool; the answer is r[k]. Corrupted: the first copy resampled, [BOS, r', r[:k]] (no earlier
  occurrence to copy from); the wrong token is r'[k].
- `brackets` (mini): `x = f(a, b` -> `)` against `x = f[a, b` -> `]` (and the other way round);
  the corrupted prompt swaps the opening bracket.
- `self-assign` (mini): `def __init__(self, a):\n        self.a =` -> ` a` (the argument name
  copied from the def line into the body); corrupted: the same with another name b, wrong ` b`.

Each task's manifest records the model, the accuracy (the share of rows where the answer's logit
beats the wrong token's), the top-1 accuracy (the answer is the model's top prediction) and the
mean logit difference.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

import torch

from lenscope.artifacts import Manifest, writing_artifact
from lenscope.data.repeated import probe_pool
from lenscope.discover.tasks import (
    ROWS_FILE,
    TASK_KIND,
    TASK_SCHEMA,
    CircuitTask,
    batch_of,
    last_logits,
    load_task,
    per_row_logit_diff,
)
from lenscope.model.load import load_model
from lenscope.model.transformer import HookedTransformer

N_ROWS = 128


# Common names in the standard library's source (the corpus the models learned from).
WORDS = tuple(
    [
        "name",
        "value",
        "key",
        "data",
        "path",
        "size",
        "count",
        "index",
        "line",
        "text",
        "mode",
        "level",
        "offset",
        "timeout",
        "result",
        "item",
        "node",
        "parent",
        "child",
        "width",
        "height",
        "args",
        "kwargs",
        "func",
        "callback",
        "buffer",
        "stream",
        "source",
        "target",
        "prefix",
        "suffix",
        "message",
        "error",
        "status",
        "state",
        "config",
        "options",
        "params",
        "default",
        "encoding",
        "flags",
        "start",
        "stop",
        "step",
        "length",
        "number",
        "format",
        "pattern",
        "token",
        "match",
        "module",
        "obj",
        "attr",
        "field",
        "entry",
        "table",
        "header",
        "body",
        "content",
        "client",
        "server",
        "request",
        "response",
        "address",
        "port",
        "host",
        "user",
        "password",
        "filename",
        "dirname",
        "root",
        "base",
        "context",
        "handler",
        "parser",
        "reader",
        "writer",
        "file",
        "files",
        "items",
        "keys",
        "values",
        "lines",
        "words",
        "chars",
        "block",
        "chunk",
        "limit",
        "total",
        "order",
        "position",
        "label",
        "title",
        "description",
        "version",
        "tag",
        "event",
        "signal",
        "sender",
        "queue",
        "task",
        "thread",
        "process",
        "command",
        "output",
        "input",
        "method",
        "owner",
        "group",
    ]
)


def identifiers(model: HookedTransformer) -> list[str]:
    """Names w from `WORDS` such that both `w` and ` w` are single tokens of the model."""
    tok = model.tokenizer
    assert tok is not None
    return [w for w in WORDS if len(tok.encode(w)) == 1 and len(tok.encode(" " + w)) == 1]


def induction_rows(model: HookedTransformer, seed: int = 0) -> list[dict[str, Any]]:
    pool = probe_pool(model).tolist()
    rng = random.Random(seed)
    bos_id = model.tokenizer.bos_id if model.tokenizer is not None else None
    bos = 0 if bos_id is None else bos_id
    rows = []
    for _ in range(N_ROWS):
        r = rng.sample(pool, 12)
        r2 = rng.sample([t for t in pool if t not in r], 12)
        k = 6
        rows.append(
            {
                "clean": [bos, *r, *r[:k]],
                "corrupted": [bos, *r2, *r[:k]],
                "answer": r[k],
                "wrong": r2[k],
            }
        )
    return rows


def bracket_rows(model: HookedTransformer, seed: int = 1) -> list[dict[str, Any]]:
    names = identifiers(model)
    rng = random.Random(seed)
    rows = []
    for i in range(N_ROWS):
        var, fn, *args = rng.sample(names, 5)
        body = ", ".join(args[: rng.randint(1, 3)])
        indent = " " * rng.choice([0, 4, 8])
        paren, square = f"{indent}{var} = {fn}({body}", f"{indent}{var} = {fn}[{body}"
        clean, corr, ans, wrong = (
            (paren, square, ")", "]") if i % 2 == 0 else (square, paren, "]", ")")
        )
        rows.append({"clean": clean, "corrupted": corr, "answer": ans, "wrong": wrong})
    return rows


def self_assign_rows(model: HookedTransformer, seed: int = 2) -> list[dict[str, Any]]:
    names = identifiers(model)
    rng = random.Random(seed)
    rows = []
    for _ in range(N_ROWS):
        a, b = rng.sample(names, 2)
        t = "    def __init__(self, {x}):\n        self.{x} ="
        rows.append(
            {
                "clean": t.format(x=a),
                "corrupted": t.format(x=b),
                "answer": " " + a,
                "wrong": " " + b,
            }
        )
    return rows


def measure(model: HookedTransformer, task: CircuitTask) -> dict[str, float]:
    """Accuracy (the answer's logit beats the wrong token's), top-1 accuracy (the answer is the
    model's top prediction) and the mean logit difference."""
    b = batch_of(task, model.device)
    with torch.no_grad():
        logits = model(b.clean)
        # right padding is harmless: attention is causal and the metric reads each row's last token
        top = last_logits(logits, b.clean_len).argmax(-1)
        ld = per_row_logit_diff(logits, b)
    return {
        "accuracy": float((ld > 0).float().mean()),
        "top1_accuracy": float((top == b.answer).float().mean()),
        "mean_logit_diff": float(ld.mean()),
    }


TASKS = {
    "induction": (
        "attn2",
        induction_rows,
        "induction: a repeated random token sequence; corrupted: first copy resampled",
    ),
    "brackets": (
        "mini",
        bracket_rows,
        "closing bracket type: `f(a, b` -> `)` vs `f[a, b` -> `]`; corrupted: the "
        "opening bracket swapped",
    ),
    "self-assign": (
        "mini",
        self_assign_rows,
        "an __init__ argument's name copied into `self.NAME =`; corrupted: another name",
    ),
}


def build(out: Path) -> None:
    for name, (model_name, make, desc) in TASKS.items():
        model = load_model(model_name)
        rows = make(model)
        dest = out / name
        tmp_rows = "\n".join(json.dumps(r) for r in rows) + "\n"
        with writing_artifact(dest, Manifest(TASK_KIND, TASK_SCHEMA)) as tmp:
            (tmp / ROWS_FILE).write_text(tmp_rows, "utf-8")
        task = load_task(dest, model, check_model=False)
        stats = measure(model, task)
        man = Manifest(
            TASK_KIND,
            TASK_SCHEMA,
            provenance={"built_by": "lenscope.discover.make_tasks", "seed": "fixed per task"},
            data={
                "name": name,
                "model": model_name,
                "description": desc,
                "metric": "logit_diff",
                "n_rows": len(rows),
                **stats,
            },
        )
        with writing_artifact(dest, man) as tmp:
            (tmp / ROWS_FILE).write_text(tmp_rows, "utf-8")
        print(name, model_name, json.dumps(stats))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("assets/tasks"))
    build(ap.parse_args().out)


if __name__ == "__main__":
    main()
