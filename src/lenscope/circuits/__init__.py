"""Weight-based circuit analysis: factored matrices, QK/OV circuits, composition, induction heads.

```python
from lenscope.circuits import circuit_weights, full_ov, composition_scores, find_induction_circuit
cw = circuit_weights(model)                 # LN folded, writing weights centred, scales frozen
full_ov(cw, 1, 2).rows([tok]).AB            # one row of W_E W_OV W_U, never vocab x vocab
composition_scores(cw, "K").pairs()[:3]     # strongest K-composition pairs
find_induction_circuit(model).pairs         # induction head <- previous-token head
path_expansion(model, tokens).contributions(-1, token)
```
"""

from __future__ import annotations

from lenscope.circuits.composition import composition_scores, copying_scores
from lenscope.circuits.folding import CircuitWeights, circuit_weights
from lenscope.circuits.heads import find_induction_circuit, head_scores, induction_summary
from lenscope.circuits.paths import path_expansion
from lenscope.circuits.phase import phase_change
from lenscope.circuits.positional import offset_preference
from lenscope.circuits.report import CircuitReport, circuit_report
from lenscope.circuits.skiptrigrams import skip_trigrams
from lenscope.circuits.tables import TokenTable, direct_path, full_ov, full_qk, token_table
from lenscope.model.factored import FactoredMatrix

__all__ = [
    "CircuitReport",
    "CircuitWeights",
    "FactoredMatrix",
    "TokenTable",
    "circuit_report",
    "circuit_weights",
    "composition_scores",
    "copying_scores",
    "direct_path",
    "find_induction_circuit",
    "full_ov",
    "full_qk",
    "head_scores",
    "induction_summary",
    "offset_preference",
    "path_expansion",
    "phase_change",
    "skip_trigrams",
    "token_table",
]
