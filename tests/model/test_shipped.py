"""Shipped subject models load offline by name and reproduce their recorded held-out loss."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from lenscope import load_model
from lenscope.data import iter_eval_batches
from lenscope.model.load import assets_dir

SHIPPED = ["attn1", "attn2", "mini"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_reproduces_recorded_val_loss(name: str) -> None:
    model = load_model(name)
    man = model.manifest  # type: ignore[attr-defined]
    recipe = man.provenance["recipe"]
    recorded = man.data["eval"]["val_loss"]
    val = load_file(str(assets_dir() / "data" / "stdlib-bpe4096-val.safetensors"))["tokens"]
    losses = []
    with torch.no_grad():
        for batch in iter_eval_batches(
            val.numpy(), recipe["batch_size"], recipe["n_ctx"], recipe["eval_batches"]
        ):
            losses.append(float(model(batch, return_type="loss")))
    measured = sum(losses) / len(losses)
    # float16 storage moves the loss by a few thousandths at most.
    assert abs(measured - recorded) < 0.02, (measured, recorded)
    assert man.data["eval"]["tokens_seen"] > 1_000_000


def test_attn2_has_induction_head_and_attn1_has_none() -> None:
    from lenscope.train.probes import induction_probe

    a2 = induction_probe(load_model("attn2"))
    a1 = induction_probe(load_model("attn1"))
    assert a2.best_induction[2] >= 0.5
    assert a2.best_induction[0] == 1  # in the second layer
    assert a2.loss_repeat_half < a2.loss_first_half - 1.0
    assert a1.best_induction[2] < 0.2
