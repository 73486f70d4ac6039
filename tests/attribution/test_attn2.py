"""On the shipped 2-layer attention-only model: asked why it predicts each repeated token of a
repeated random sequence, the node table puts the induction head (found by the induction probe, as
`lenscope circuits` does) first among heads, and tracing that head through its key leads to the
previous-token head. attn2 has two induction heads of similar strength, so one position is noisy:
the question is asked at every third position of the second copy and the effects are summed."""

from __future__ import annotations

from collections import defaultdict

import pytest

from lenscope import load_model
from lenscope.attribution.api import Debugger
from lenscope.attribution.questions import Logit
from lenscope.data.repeated import repeated_tokens
from lenscope.errors import ModelNotFoundError
from lenscope.nodes import NodeKind
from lenscope.train.probes import induction_probe

SEQ_LEN = 30


@pytest.mark.parametrize("seed", [0, 1])
def test_why_the_repeated_token_is_the_induction_head_fed_by_the_previous_token_head(
    seed: int,
) -> None:
    try:
        model = load_model("attn2")
    except ModelNotFoundError:
        pytest.skip("attn2 is not trained or shipped here")
    probe = induction_probe(model)
    induction = "L{}.H{}".format(*probe.best_induction[:2])
    prev_token = "L{}.H{}".format(*probe.best_prev_token[:2])
    dbg = Debugger(model)
    toks = repeated_tokens(model, seq_len=SEQ_LEN, n_seqs=1, seed=seed)[0].tolist()
    effect: dict[str, float] = defaultdict(float)
    key_edge: dict[str, float] = defaultdict(float)
    for end in range(SEQ_LEN + 3, 2 * SEQ_LEN + 1, 3):  # prompts ending inside the second copy
        ids, question = toks[:end], Logit(token=toks[end])
        r = dbg.why(ids, question, measure=0, top_k=50)
        for row in r.table.rows:
            if row.kind is NodeKind.HEAD and row.granularity == "component":
                effect[row.node] += row.total_effect
        t = dbg.trace(ids, question, [f"{induction}@{end - 1}:k"], top_k=50)
        for edge in t.rows:
            if edge.granularity == "component":
                key_edge[edge.node] += edge.edge
    assert max(effect, key=effect.__getitem__) == induction
    assert max(key_edge, key=key_edge.__getitem__) == prev_token
