"""lenscope: a transformer debugger for mechanistic interpretability."""

from __future__ import annotations

__version__ = "0.1.0"

from lenscope.model import (
    ActivationCache,
    HookedTransformer,
    ModelConfig,
    load_model,
    save_model,
)

__all__ = ["ActivationCache", "HookedTransformer", "ModelConfig", "load_model", "save_model"]
