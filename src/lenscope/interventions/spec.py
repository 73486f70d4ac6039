"""Interventions as plain, JSON-friendly requests: ablate, patch, steer, clamp.

These are the request types the CLI and the HTTP server accept; `lenscope.interventions.plan`
turns a set of them into request-scoped hooks. Positions count tokens of each prompt from 0.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lenscope.nodes import NodeId, NodeIdStr

Prompt = str | list[int]
"""A prompt: text (tokenized with the model's tokenizer, BOS prepended as the model does) or ids."""

AblationMode = Literal["zero", "mean", "resample"]


class Ablate(BaseModel):
    """Replace a node's activation: by zero, by its mean over `InterventionSet.reference`, or by its
    activation on another prompt (`source`, position by position)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["ablate"] = "ablate"
    node: NodeIdStr
    mode: AblationMode = "zero"
    source: Prompt | None = None

    @model_validator(mode="after")
    def _source_for_resample(self) -> Ablate:
        if self.mode == "resample" and self.source is None:
            raise ValueError("resample ablation needs a source prompt")
        return self


class Patch(BaseModel):
    """Activation patching: take the activation at `hook` (at `positions`, or all) from a run on
    `source`. For attention-pattern hooks the positions are query positions."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["patch"] = "patch"
    hook: str
    source: Prompt
    positions: list[int] | None = None


class Steer(BaseModel):
    """Add `coefficient` times a direction at `hook` (at `positions`, or all): an explicit vector,
    or an SAE latent's decoder direction (`latent`, whose hook is the default). A transcoder
    latent without `hook` is steered inside its splice: `coefficient` is added to its activation,
    so its decoder row is written into its MLP's output (a cross-layer transcoder's rows into
    every MLP output it writes)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["steer"] = "steer"
    hook: str | None = None
    vector: list[float] | None = None
    latent: NodeIdStr | None = None
    coefficient: float = 1.0
    positions: list[int] | None = None

    @model_validator(mode="after")
    def _one_direction(self) -> Steer:
        if (self.vector is None) == (self.latent is None):
            raise ValueError("steer needs exactly one of vector or latent")
        if self.vector is not None and self.hook is None:
            raise ValueError("steering with a vector needs a hook")
        return self


class Clamp(BaseModel):
    """Set a node's activation to `value`: an MLP neuron's post-activation, or an SAE or
    transcoder latent's activation (edited inside the splice, so the latent writes `value` times
    its decoder rows into every hook it writes), at the node's position or at every position."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["clamp"] = "clamp"
    node: NodeIdStr
    value: float

    @model_validator(mode="after")
    def _finite(self) -> Clamp:
        if not math.isfinite(self.value):
            raise ValueError("a clamp value must be a finite number")
        return self


Intervention = Annotated[Ablate | Patch | Steer | Clamp, Field(discriminator="type")]


class InterventionSet(BaseModel):
    """Interventions applied together to every prompt of a request, in order."""

    model_config = ConfigDict(extra="forbid")
    interventions: list[Intervention] = Field(default_factory=list)
    reference: list[Prompt] | None = None  # prompts whose mean activations mean-ablation uses

    @classmethod
    def of(
        cls, *items: Ablate | Patch | Steer | Clamp, reference: list[Prompt] | None = None
    ) -> InterventionSet:
        return cls(interventions=list(items), reference=reference)

    def __bool__(self) -> bool:
        return bool(self.interventions)


def ablate(*nodes: str, mode: AblationMode = "zero", source: Prompt | None = None) -> list[Ablate]:
    """Shorthand: `InterventionSet.of(*ablate("L1.H2", "L0.N5@3"))`; bad ids are `InputError`s."""
    return [Ablate(node=str(NodeId.parse(n)), mode=mode, source=source) for n in nodes]
