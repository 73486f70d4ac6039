"""The debugger's engine: why a model predicts A rather than B, why a head attends where it does.

    from lenscope.attribution import Debugger, LogitDiff
    dbg = Debugger(model)
    r = dbg.why("def f(a, b", LogitDiff(target=[")"], distractor=[","]))
    r.table.top("total_effect", "component")

See docs/debugger.md. Every call runs on a private view of the model (request-scoped hooks).
"""

from lenscope.attribution.api import Debugger, why
from lenscope.attribution.attention import AttentionResult, HeadAttention, SideRow
from lenscope.attribution.compare import CompareRow, Comparison, Side
from lenscope.attribution.questions import (
    AttentionScore,
    Logit,
    LogitDiff,
    Prob,
    Question,
    TokenInfo,
)
from lenscope.attribution.results import (
    Candidate,
    EdgeRow,
    Hop,
    KindSum,
    NodeRow,
    NodeTable,
    Ranking,
    Term,
    TokenRow,
    TraceResult,
    WhyResult,
)

__all__ = [
    "AttentionResult",
    "AttentionScore",
    "Candidate",
    "CompareRow",
    "Comparison",
    "Debugger",
    "EdgeRow",
    "HeadAttention",
    "Hop",
    "KindSum",
    "Logit",
    "LogitDiff",
    "NodeRow",
    "NodeTable",
    "Prob",
    "Question",
    "Ranking",
    "Side",
    "SideRow",
    "Term",
    "TokenInfo",
    "TokenRow",
    "TraceResult",
    "WhyResult",
    "why",
]
