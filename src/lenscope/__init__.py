"""lenscope: a transformer debugger for mechanistic interpretability.

The headline objects, for users of TransformerLens and SAELens:

```python
import lenscope as ls

model = ls.load_model("mini")                                  # or a local HF checkpoint
logits, cache = model.run_with_cache("def f(a, b):")
resid = cache[ls.get_act_name("resid_post", 1)]                 # "blocks.1.hook_resid_post"
r = ls.Debugger(model).why("def f(a, b", ls.LogitDiff(target=[")"], distractor=[","]))
model.OV[1, 2].norm()                                          # a FactoredMatrix per head
```

Everything else lives in the subpackages (`lenscope.model`, `lenscope.attribution`,
`lenscope.interventions`, `lenscope.sae`, `lenscope.lens`, `lenscope.circuits`, ...). The names
below load on first use, so `import lenscope` stays cheap and does not import torch.
"""

import importlib as _importlib
import typing as _typing

__version__ = "0.1.0"

# Before torch is imported: large CPU tensors on transparent huge pages (LENSCOPE_HUGE_PAGES=0
# opts out; see lenscope.runtime). `import torch` before `import lenscope` turns this off.
from lenscope.runtime import enable_huge_pages as _enable_huge_pages

_enable_huge_pages()

# name -> the subpackage that defines it; imported on first access (PEP 562).
_EXPORTS = {
    # the subject model
    "HookedTransformer": "lenscope.model",
    "ModelConfig": "lenscope.model",
    "ActivationCache": "lenscope.model",
    "load_model": "lenscope.model",
    "save_model": "lenscope.model",
    "get_act_name": "lenscope.model",
    "FactoredMatrix": "lenscope.model",
    # the debugger and its questions
    "Debugger": "lenscope.attribution",
    "LogitDiff": "lenscope.attribution",
    "Logit": "lenscope.attribution",
    "Prob": "lenscope.attribution",
    "AttentionScore": "lenscope.attribution",
    # interventions
    "InterventionSet": "lenscope.interventions",
    "Ablate": "lenscope.interventions",
    "Patch": "lenscope.interventions",
    "Steer": "lenscope.interventions",
    # dictionaries
    "SparseAutoencoder": "lenscope.sae",
    "load_sae": "lenscope.sae",
    "splice": "lenscope.sae",
    # the lens
    "logit_lens": "lenscope.lens",
    "load_tuned_lens": "lenscope.lens",
    # circuits
    "circuit_weights": "lenscope.circuits",
    "find_induction_circuit": "lenscope.circuits",
}

__all__ = [
    "Ablate",
    "ActivationCache",
    "AttentionScore",
    "Debugger",
    "FactoredMatrix",
    "HookedTransformer",
    "InterventionSet",
    "Logit",
    "LogitDiff",
    "ModelConfig",
    "Patch",
    "Prob",
    "SparseAutoencoder",
    "Steer",
    "circuit_weights",
    "find_induction_circuit",
    "get_act_name",
    "load_model",
    "load_sae",
    "load_tuned_lens",
    "logit_lens",
    "save_model",
    "splice",
]

if _typing.TYPE_CHECKING:
    from lenscope.attribution import AttentionScore, Debugger, Logit, LogitDiff, Prob
    from lenscope.circuits import circuit_weights, find_induction_circuit
    from lenscope.interventions import Ablate, InterventionSet, Patch, Steer
    from lenscope.lens import load_tuned_lens, logit_lens
    from lenscope.model import (
        ActivationCache,
        FactoredMatrix,
        HookedTransformer,
        ModelConfig,
        get_act_name,
        load_model,
        save_model,
    )
    from lenscope.sae import SparseAutoencoder, load_sae
    from lenscope.sae.dictionary import splice


def __getattr__(name: str) -> _typing.Any:
    """Load a headline name (or a subpackage, `lenscope.circuits`) on first access."""
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if not name.startswith("_"):
        try:
            return _importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
