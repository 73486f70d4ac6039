"""The debugger's engine: why a model predicts A rather than B, why a head attends where it does.

    from lenscope.attribution import Debugger, LogitDiff
    dbg = Debugger(model)
    r = dbg.why("def f(a, b", LogitDiff(target=[")"], distractor=[","]))
    r.table.top("total_effect", "component")

See docs/debugger.md. Every call runs on a private view of the model (request-scoped hooks).
"""

from lenscope.attribution.api import Debugger, why
from lenscope.attribution.attention import AttentionResult
from lenscope.attribution.compare import Comparison, Side
from lenscope.attribution.questions import AttentionScore, Logit, LogitDiff, Prob, Question
from lenscope.attribution.results import Hop, NodeRow, NodeTable, TraceResult, WhyResult

__all__ = [
    "AttentionResult",
    "AttentionScore",
    "Comparison",
    "Debugger",
    "Hop",
    "Logit",
    "LogitDiff",
    "NodeRow",
    "NodeTable",
    "Prob",
    "Question",
    "Side",
    "TraceResult",
    "WhyResult",
    "why",
]
