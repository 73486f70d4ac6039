"""The tuned lens shipped for `mini`: it resolves by name, belongs to the shipped mini, and beats
the logit lens in KL(final ‖ lens) at every boundary but the last on held-out tokens."""

from __future__ import annotations

import json

import torch

from lenscope import load_model
from lenscope.lens import load_tuned_lens, logit_lens
from lenscope.lens.core import lens_logits
from lenscope.lens.tuned import find_tuned_lens, shipped_lenses_dir
from lenscope.model.load import fingerprint
from tests.lens.shipped import val_tokens


def test_shipped_lens_resolves_by_name_and_auto_and_matches_shipped_mini() -> None:
    m = load_model("mini")
    path = shipped_lenses_dir() / "mini-tuned"
    man = json.loads((path / "manifest.json").read_text())
    assert man["kind"] == "tuned_lens"
    assert man["provenance"]["model_fingerprint"] == fingerprint(m)
    assert find_tuned_lens(m) == path
    a, b = load_tuned_lens("mini-tuned", m), load_tuned_lens("auto", m)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert a.weight.abs().max() > 0  # trained, not the identity


def _kl_per_boundary(m, batch, tuned):  # type: ignore[no-untyped-def]
    """Mean KL(final ‖ lens) per boundary, float64, from the full lens logits."""
    _, logits = lens_logits(m, batch, tuned=tuned)
    logp = logits.double().log_softmax(-1)
    return (logp[-1].exp() * (logp[-1] - logp)).sum(-1).mean((1, 2))


def test_shipped_tuned_lens_beats_the_logit_lens_on_held_out_tokens() -> None:
    m = load_model("mini")
    lens = load_tuned_lens("mini-tuned", m)
    batch = val_tokens(4 * 128, offset=4096).reshape(4, 128)
    logit = _kl_per_boundary(m, batch, None)
    tuned = _kl_per_boundary(m, batch, lens)
    assert (tuned[:-1] < logit[:-1]).all(), (tuned, logit)
    assert tuned[-1] == logit[-1] == 0
    # the per-sequence lens agrees: its mean KL per boundary is the same figure
    res = logit_lens(m, batch[0], tuned=lens)
    one = _kl_per_boundary(m, batch[:1], lens)
    assert torch.allclose(res.kl.double().mean(1), one, atol=1e-4)
