"""Request-scoped interventions: ablate, patch, steer, clamp; the private model view they run on.

Requests are plain JSON (`InterventionSet`); `compile_plan` turns one into edits on hook points of
a `private_view` of the model, so nothing is ever attached to the model itself.
"""

from lenscope.interventions.plan import Plan, compile_plan
from lenscope.interventions.prompts import PromptBatch, encode_prompts
from lenscope.interventions.spec import (
    Ablate,
    Clamp,
    Intervention,
    InterventionSet,
    Patch,
    Prompt,
    Steer,
    ablate,
)
from lenscope.model.view import private_view

__all__ = [
    "Ablate",
    "Clamp",
    "Intervention",
    "InterventionSet",
    "Patch",
    "Plan",
    "Prompt",
    "PromptBatch",
    "Steer",
    "ablate",
    "compile_plan",
    "encode_prompts",
    "private_view",
]
