"""lenscope: a transformer debugger for mechanistic interpretability."""

from __future__ import annotations

__version__ = "0.1.0"
