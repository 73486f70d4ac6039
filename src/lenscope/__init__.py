"""lenscope: a transformer debugger for mechanistic interpretability."""

from __future__ import annotations

__version__ = "0.1.0"

# Before torch is imported: large CPU tensors on transparent huge pages (LENSCOPE_HUGE_PAGES=0
# opts out; see lenscope.runtime).
from lenscope.runtime import enable_huge_pages

enable_huge_pages()

from lenscope.model import (  # noqa: E402
    ActivationCache,
    HookedTransformer,
    ModelConfig,
    load_model,
    save_model,
)

__all__ = ["ActivationCache", "HookedTransformer", "ModelConfig", "load_model", "save_model"]
