"""Labelled tokens: held-out documents of a model's token stream with code labels per token.

Each Python document of the stream's split is decoded to text with the model's tokenizer, labelled
per character (`data.code_labels`) and the labels are carried back to its tokens by their character
offsets (the tokenizer's own offsets when re-encoding the text gives the same tokens, else each
token's decoded length). Documents are joined with the stream's separator (unlabelled) and cut into
windows of `ctx` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from lenscope.data.code_labels import LABELS, UNREAD, fragment_offsets, token_labels
from lenscope.data.stream import TokenStream, separator
from lenscope.errors import InputError
from lenscope.model import HookedTransformer


@dataclass
class CodeTokens:
    """Windows of token ids [n, ctx] and, per label, its value at each token [n, ctx]
    (kind -1: unlabelled, e.g. a separator; in_def -1: the document did not parse)."""

    windows: Tensor
    labels: dict[str, npt.NDArray[np.int16]]
    documents: int


def _offsets(model: HookedTransformer, ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    tok = model.tokenizer
    assert tok is not None
    text = tok.decode(ids)
    enc = tok.hf.encode(text, add_special_tokens=False)
    if list(enc.ids) == ids:
        return text, [(int(a), int(b)) for a, b in enc.offsets]
    return fragment_offsets([tok.decode([i]) for i in ids])


def code_tokens(
    model: HookedTransformer,
    stream: TokenStream,
    *,
    n_tokens: int,
    ctx: int,
    split: str = "val",
    suffix: str = ".py",
) -> CodeTokens:
    """About `n_tokens` labelled tokens (whole windows of `ctx`) from the `split` documents of
    `stream` whose names end with `suffix`, then from the other split's when those run out (a
    probe is scored on its own held-out tokens, so the model's training text may serve)."""
    if stream.dataset is None:
        raise InputError(f"{stream.source} has no document index; code labels need documents")
    if ctx < 2 or n_tokens < ctx:
        raise InputError(f"code labels need n_tokens >= ctx >= 2 (got {n_tokens}, {ctx})")
    sep = separator(model)
    docs = stream.dataset.documents().to_pydict()
    other = "train" if split == "val" else "val"
    ids: list[int] = []
    labs: dict[str, list[npt.NDArray[np.int16]]] = {k: [] for k in LABELS}
    used = 0
    order = sorted(
        (s != split, o, n, s)
        for name, s, o, n in zip(
            docs["name"], docs["split"], docs["offset"], docs["tokens"], strict=True
        )
        if s in (split, other) and str(name).endswith(suffix) and n > 0
    )
    for _, o, n, s in order:
        doc = [int(t) for t in stream.dataset.split(s)[o : o + n]]
        text, offsets = _offsets(model, doc)
        lab = token_labels(text, offsets)
        ids += [*doc, sep]
        for k in LABELS:
            labs[k].append(lab[k])
            labs[k].append(np.array([UNREAD], np.int16))
        used += 1
        if len(ids) >= n_tokens:
            break
    rows = min(len(ids), n_tokens) // ctx
    if rows == 0:
        raise InputError(f"{stream.source} has fewer than {ctx} tokens of Python code to label")
    m = rows * ctx
    windows = torch.tensor(ids[:m], dtype=torch.long).reshape(rows, ctx)
    labels = {k: np.concatenate(v)[:m].reshape(rows, ctx) for k, v in labs.items()}
    return CodeTokens(windows, labels, used)


def binary_tasks(labels: dict[str, npt.NDArray[np.int16]]) -> dict[str, npt.NDArray[np.int8]]:
    """Binary tasks from the labels, per token: 1 / 0, or -1 where the task is undefined.

    kind:K for each token kind (keyword, name, string, number, comment, operator) against the
    other labelled tokens; in_string, in_comment, def_args, in_def; bracket_depth:0 / 1 / 2+
    and indent:0 / 1 / 2 / 3+ one against the rest."""
    from lenscope.data.code_labels import KINDS

    kind = labels["kind"]
    known = kind >= 0
    out: dict[str, npt.NDArray[np.int8]] = {}

    def task(pos: npt.NDArray[np.bool_], defined: npt.NDArray[np.bool_]) -> npt.NDArray[np.int8]:
        return np.where(defined, pos.astype(np.int8), np.int8(-1)).astype(np.int8)

    for i, k in enumerate(KINDS):
        if k != "none":
            out[f"kind:{k}"] = task(kind == i, known)
    for k in ("in_string", "in_comment", "def_args"):
        out[k] = task(labels[k] > 0, known)
    out["in_def"] = task(labels["in_def"] > 0, known & (labels["in_def"] >= 0))
    for lo, name in ((0, "0"), (1, "1"), (2, "2+")):
        d = labels["bracket_depth"]
        out[f"bracket_depth:{name}"] = task(d >= lo if name.endswith("+") else d == lo, known)
    for lo, name in ((0, "0"), (1, "1"), (2, "2"), (3, "3+")):
        d = labels["indent"]
        out[f"indent:{name}"] = task(d >= lo if name.endswith("+") else d == lo, known)
    return out
