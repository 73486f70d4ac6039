"""Layer 3, train: deterministic, resumable recipes for lenscope's own subject models."""

from lenscope.train.loop import TrainResult, train
from lenscope.train.probes import InductionProbe, induction_probe
from lenscope.train.recipes import RECIPES, Recipe, get_recipe

__all__ = [
    "RECIPES",
    "InductionProbe",
    "Recipe",
    "TrainResult",
    "get_recipe",
    "induction_probe",
    "train",
]
