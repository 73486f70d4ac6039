"""Circuit instruments that run the model do it on a private view: a user's hook on the model
(zeroing every head's output) is not seen, results equal a fresh copy's, nothing is left."""

from __future__ import annotations

import torch

from lenscope import HookedTransformer
from lenscope.circuits import (
    circuit_report,
    circuit_weights,
    find_induction_circuit,
    head_scores,
    path_expansion,
)
from lenscope.circuits.phase import icl_losses
from lenscope.train.probes import induction_probe
from tests.circuits.models import random_model
from tests.model.isolation import assert_same, clean, spoiled


def test_circuit_instruments_do_not_see_the_users_hooks() -> None:
    model, fresh = random_model(), random_model()
    prompt = torch.tensor([0, 5, 9, 3, 5, 9, 3, 7])
    windows = torch.randint(0, 40, (4, 16), generator=torch.Generator().manual_seed(1))

    def calls(m: HookedTransformer) -> dict[str, object]:
        return {
            "scores": head_scores(m, seq_len=6, n_seqs=4),
            "weights": circuit_weights(m),
            "induction": find_induction_circuit(m).to_json(),
            "paths": path_expansion(m, prompt),
            "report": circuit_report(m, prompt=prompt),
            "icl": icl_losses(m, windows, (1, 2), (12, 16)),
            "probe": induction_probe(m, seq_len=6, n_seqs=4),
        }

    want = calls(fresh)
    with spoiled(model):
        assert not torch.equal(model(windows), fresh(windows))  # the hook changes the output
        got = calls(model)
    assert_same(got, want)
    assert clean(model) and clean(fresh)
