"""Layer 3, train: deterministic, resumable recipes for lenscope's own subject models."""

from lenscope.train.loop import train
from lenscope.train.recipes import RECIPES, get_recipe

__all__ = [
    "RECIPES",
    "get_recipe",
    "train",
]
