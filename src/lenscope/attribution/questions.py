"""Questions: what the debugger explains. A prompt plus a scalar read at one position.

- `LogitDiff`: mean logit of the target tokens minus mean logit of the distractor tokens
- `Logit`, `Prob`: one token's logit or probability
- `AttentionScore`: the pre-softmax attention score of head (layer, head) from a query position to
  a key position (scaled by 1/attn_scale, as the softmax sees it)

Positions default to the last token of each prompt; negative positions count from the end.
Tokens are given as text (each must be exactly one token) or as ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from lenscope.errors import InputError
from lenscope.jsonable import JsonResult
from lenscope.model.transformer import HookedTransformer

TokenSpec = str | int


class LogitDiff(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["logit_diff"] = "logit_diff"
    target: list[TokenSpec]
    distractor: list[TokenSpec]
    position: int | None = None


class Logit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["logit"] = "logit"
    token: TokenSpec
    position: int | None = None


class Prob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["prob"] = "prob"
    token: TokenSpec
    position: int | None = None


class AttentionScore(BaseModel):
    # query_pos / key_pos are also accepted as query_position / key_position, the names results
    # use (no docstring: it would change the OpenAPI schema the web app's types are generated from)
    model_config = ConfigDict(extra="forbid")
    kind: Literal["attention"] = "attention"
    layer: int
    head: int
    query_pos: int | None = Field(
        None, validation_alias=AliasChoices("query_pos", "query_position")
    )
    key_pos: int = Field(validation_alias=AliasChoices("key_pos", "key_position"))

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        for short in ("query_pos", "key_pos"):
            long = short + "ition"
            if isinstance(data, dict) and short in data and long in data:
                raise ValueError(f"give {short} or {long} (the same field), not both")
        return data


Question = Annotated[LogitDiff | Logit | Prob | AttentionScore, Field(discriminator="kind")]


@dataclass(kw_only=True)
class TokenInfo(JsonResult):
    """How a requested token resolved: what was asked, its id and its text in the vocabulary."""

    asked: str | int
    id: int
    token: str


def token_text(model: HookedTransformer, i: int) -> str:
    return model.tokenizer.token_str(i) if model.tokenizer is not None else f"#{i}"


def resolve_token(model: HookedTransformer, spec: TokenSpec) -> TokenInfo:
    v = model.cfg.d_vocab
    if isinstance(spec, int):
        if not 0 <= spec < v:
            raise InputError(f"token id {spec} is not in the vocabulary (ids 0..{v - 1})")
        return TokenInfo(asked=spec, id=spec, token=token_text(model, spec))
    if spec == "":
        raise InputError("an empty string is not a token; give the token's text, e.g. ' the'")
    if model.tokenizer is None:
        raise InputError(f"{model.cfg.name} has no tokenizer; give token ids instead of {spec!r}")
    ids = model.tokenizer.encode(spec, prepend_bos=False)
    if len(ids) != 1:
        pieces = [token_text(model, i) for i in ids]
        raise InputError(
            f"{spec!r} is {len(ids)} tokens {pieces}, not one token of the vocabulary; "
            "give a single token (mind the leading space)"
        )
    if not 0 <= ids[0] < v:
        raise InputError(f"{spec!r} encodes to id {ids[0]}, outside the model's vocabulary of {v}")
    unk = _unknown_id(model)
    if unk is not None and ids[0] == unk and spec.strip() != token_text(model, unk).strip():
        raise InputError(
            f"{spec!r} is not in the vocabulary (it becomes the unknown token "
            f"{token_text(model, unk)!r}); give a token the model knows"
        )
    return TokenInfo(asked=spec, id=ids[0], token=token_text(model, ids[0]))


def _unknown_id(model: HookedTransformer) -> int | None:
    hf = getattr(model.tokenizer, "hf", None)
    unk = getattr(getattr(hf, "model", None), "unk_token", None)
    if hf is None or not isinstance(unk, str):
        return None
    i = hf.token_to_id(unk)
    return i if isinstance(i, int) else None


@dataclass
class Resolved:
    """A question checked against a model: token ids resolved, positions validated per prompt."""

    spec: LogitDiff | Logit | Prob | AttentionScore
    targets: list[TokenInfo]
    distractors: list[TokenInfo]
    window: int = 0  # attention questions: the layer's sliding window (0: every earlier key)

    @property
    def is_attention(self) -> bool:
        return isinstance(self.spec, AttentionScore)

    @property
    def layer(self) -> int:
        assert isinstance(self.spec, AttentionScore)
        return self.spec.layer

    @property
    def head(self) -> int:
        assert isinstance(self.spec, AttentionScore)
        return self.spec.head

    def answer_positions(self, lengths: Sequence[int]) -> list[int]:
        """The position each prompt's question reads (the query position for attention)."""
        pos = self.spec.query_pos if isinstance(self.spec, AttentionScore) else self.spec.position
        return [_position(pos, n, "the question's position") for n in lengths]

    def key_positions(self, lengths: Sequence[int]) -> list[int]:
        assert isinstance(self.spec, AttentionScore)
        keys = [_position(self.spec.key_pos, n, "the key position") for n in lengths]
        for k, q in zip(keys, self.answer_positions(lengths), strict=True):
            if k > q:
                raise InputError(
                    f"a query attends only to earlier keys: key position {k} comes after query "
                    f"position {q}"
                )
            if self.window and q - k >= self.window:
                raise InputError(
                    f"layer {self.layer} attends through a sliding window of {self.window} keys: "
                    f"key position {k} is outside query position {q}'s window "
                    f"({q - self.window + 1}..{q})"
                )
        return keys

    def value(self, logits: Tensor) -> Tensor:
        """The question's value from the logits [batch, vocab] at the answer position."""
        s = self.spec
        if isinstance(s, LogitDiff):
            t = torch.tensor([i.id for i in self.targets], device=logits.device)
            d = torch.tensor([i.id for i in self.distractors], device=logits.device)
            return logits[:, t].mean(-1) - logits[:, d].mean(-1)
        tok = self.targets[0].id
        if isinstance(s, Logit):
            return logits[:, tok]
        return logits.float().softmax(-1)[:, tok].to(logits.dtype)

    def describe(self, answer: int | None = None, key: int | None = None) -> str:
        """One line naming the question; `answer`/`key` are the positions it resolved to on the
        prompt (without them an attention query left at its default is "the last position")."""
        s = self.spec
        if isinstance(s, LogitDiff):
            a = " ".join(repr(t.token) for t in self.targets)
            b = " ".join(repr(t.token) for t in self.distractors)
            return f"logit({a}) - logit({b})"
        if isinstance(s, Logit):
            return f"logit({self.targets[0].token!r})"
        if isinstance(s, Prob):
            return f"p({self.targets[0].token!r})"
        q = answer if answer is not None else s.query_pos
        query = "at the last position" if q is None else str(q)
        k = key if key is not None else s.key_pos
        return f"attention score L{s.layer}.H{s.head} query {query} -> key {k}"


def _position(pos: int | None, n: int, what: str) -> int:
    if pos is None:
        return n - 1
    p = pos + n if pos < 0 else pos
    if not 0 <= p < n:
        raise InputError(
            f"{what} {pos} is beyond the prompt ({n} tokens: positions 0..{n - 1} or -1..-{n})"
        )
    return p


def resolve(
    model: HookedTransformer, question: LogitDiff | Logit | Prob | AttentionScore
) -> Resolved:
    cfg = model.cfg
    if isinstance(question, AttentionScore):
        if not 0 <= question.layer < cfg.n_layers:
            raise InputError(
                f"layer {question.layer} does not exist: {cfg.name} has layers 0..{cfg.n_layers - 1}"
            )
        if not 0 <= question.head < cfg.n_heads:
            raise InputError(
                f"head {question.head} does not exist: {cfg.name} has heads 0..{cfg.n_heads - 1}"
            )
        return Resolved(question, [], [], window=cfg.window(question.layer))
    if isinstance(question, LogitDiff):
        if not question.target:
            raise InputError("the target token set is empty: give at least one target token")
        if not question.distractor:
            raise InputError("the distractor token set is empty: give at least one distractor")
        targets = [resolve_token(model, t) for t in question.target]
        distractors = [resolve_token(model, t) for t in question.distractor]
        both = {t.id for t in targets} & {d.id for d in distractors}
        if both:
            same = token_text(model, next(iter(both)))
            raise InputError(
                f"{same!r} is both a target and a distractor; the difference would ignore it. "
                "Give different tokens"
            )
        return Resolved(question, targets, distractors)
    return Resolved(question, [resolve_token(model, question.token)], [])
