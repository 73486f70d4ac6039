"""Models in bfloat16: oneDNN's bfloat16 kernel, and logits within its rounding of float32's."""

from __future__ import annotations

import pytest
import torch

from lenscope import linalg, load_model
from tests.onednn import count_onednn_calls


def test_bfloat16_model_runs_on_the_fast_path_and_agrees_with_float32(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """load_model(dtype=bfloat16): every matmul takes oneDNN's bfloat16 kernel where the CPU has
    bf16 instructions (torch's own elsewhere), the logits stay
    within bfloat16 rounding of float32's, and cached generation works in bfloat16 too."""
    if not linalg._AVAILABLE:
        pytest.skip("this torch build has no oneDNN linear kernel")
    calls = count_onednn_calls(monkeypatch)
    ref = load_model("mini")
    half = load_model("mini", dtype=torch.bfloat16)
    prompt = ref.to_tokens("    for i in range(len(items)):\n        total")
    with torch.no_grad():
        want = ref(prompt)[0, -1].log_softmax(-1)
        calls.clear()
        got = half(prompt)[0, -1].float().log_softmax(-1)
        if linalg._BF16:  # QKV, MLP in/out, the unembedding
            assert len(calls) >= 3 * half.cfg.n_layers + 1
        else:  # a CPU without bf16 instructions: oneDNN refuses bfloat16, torch runs it
            assert calls == []
        gen = half.generate(prompt, max_new_tokens=5)
    assert got.argmax() == want.argmax()
    top = want.topk(10).indices
    assert (got[top] - want[top]).abs().max() < 0.5
    assert isinstance(gen, torch.Tensor) and gen.shape[1] == prompt.shape[1] + 5
