"""The per-receiver forward is the model's own forward, on every architecture it accepts."""

from __future__ import annotations

import pytest
import torch

from lenscope.discover.forward import EdgeForward
from lenscope.discover.graph import EdgeGraph
from lenscope.errors import InputError
from lenscope.model.config import ModelConfig
from lenscope.model.transformer import HookedTransformer


def _close(model: HookedTransformer, tokens: torch.Tensor) -> None:
    with torch.no_grad():
        ref = model(tokens)
        got = EdgeForward(model).run(tokens).logits
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


def test_unablated_forward_is_the_models(attn2: HookedTransformer, mini: HookedTransformer) -> None:
    g = torch.Generator().manual_seed(0)
    for model in (attn2, mini):
        _close(model, torch.randint(0, model.cfg.d_vocab, (3, 17), generator=g))


def test_modern_blocks_rotary_rmsnorm_gated() -> None:
    cfg = ModelConfig(
        n_layers=2, d_model=32, n_heads=4, d_vocab=50, n_ctx=32, d_mlp=48, positional="rotary",
        normalization="RMS", gated_mlp=True, act_fn="silu", attn_bias=False, mlp_bias=False,
    )  # fmt: skip
    model = HookedTransformer(cfg)
    _close(model, torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(1)))
    assert not EdgeGraph.of(cfg).has_pos


def test_graph_counts_edges_by_hand() -> None:
    # attn2: embed, pos, 2x4 heads; receivers 2x4x3 + logits
    cfg = ModelConfig(n_layers=2, d_model=16, n_heads=4, d_vocab=10, n_ctx=8, attn_only=True)
    g = EdgeGraph.of(cfg)
    assert len(g.upstream) == 10 and len(g.receivers) == 25
    assert g.n_edges == 12 * 2 + 12 * 6 + 10
    # with MLPs: each MLP also reads its own layer's heads; the logits read every node
    cfg = ModelConfig(n_layers=2, d_model=16, n_heads=2, d_vocab=10, n_ctx=8, d_mlp=8)
    g = EdgeGraph.of(cfg)
    heads = 6 * 2 + 6 * (2 + 3)
    mlps = (2 + 2) + (2 + 3 + 2)
    assert g.n_edges == heads + mlps + len(g.upstream)
    assert g.edge_name(g.n_edges - 1) == "L1.mlp->logits"
    assert g.edge_index("L0.H1->L1.H0:k") >= 0


def test_refuses_architectures_it_does_not_describe() -> None:
    cfg = ModelConfig(n_layers=1, d_model=16, n_heads=4, n_kv_heads=2, d_vocab=10, n_ctx=8)
    with pytest.raises(InputError, match="grouped-query attention"):
        EdgeGraph.of(cfg)
