"""Qwen3-MoE (a sparse mixture of experts with Qwen3's q/k norms) and Qwen2-MoE (with a shared
expert) from checkpoints that `transformers` built and saved, with the router's top-k weights
renormalised (`norm_topk_prob`) and as they are (its default).

The checks of `test_hf_equivalence` run here too (logits, every hidden state, greedy generation
with the KV cache, padded batches, the tokenizer, the oneDNN path). Beside them: the router's
logits and weights against transformers' own router, the Hub's per-expert layout, and a bad
config refused in one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from lenscope import load_model
from lenscope.errors import UnsupportedArchitectureError
from tests.model.hf_fixtures import VOCAB, make_checkpoint

# The shared checks, collected here again with this module's `pair` fixture.
from tests.model.test_hf_equivalence import (  # noqa: F401
    test_every_matmul_through_onednn_matches_transformers,
    test_greedy_generation_matches,
    test_hidden_states_match_every_layer,
    test_logits_match,
    test_padded_batch_matches_single_prompts,
    test_tokenizer_loaded,
)


@pytest.fixture(scope="module", params=["qwen3-moe", "qwen3-moe-norm", "qwen2-moe"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    d = tmp_path_factory.mktemp(request.param)
    hf = make_checkpoint(request.param, d)
    return hf, load_model(d)


def _tokens(n: int = 12, seed: int = 11) -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, n), generator=torch.Generator().manual_seed(seed))


def test_the_router_matches_transformers(pair: Any) -> None:
    hf, ours = pair
    tokens = _tokens()
    seen: dict[int, torch.Tensor] = {}

    def grab(layer: int) -> Any:
        def fn(mod: Any, args: Any, out: Any) -> None:
            seen[layer] = args[0]

        return fn

    handles = [lyr.mlp.register_forward_hook(grab(i)) for i, lyr in enumerate(hf.model.layers)]
    try:
        with torch.no_grad():
            hf(tokens)
            _, cache = ours.run_with_cache(tokens)
    finally:
        for h in handles:
            h.remove()
    cfg = ours.cfg
    assert cfg.experts_renormalize == hf.config.norm_topk_prob
    for layer in range(cfg.n_layers):
        router = hf.model.layers[layer].mlp.gate
        with torch.no_grad():
            logits, top, idx = router(seen[layer])
        pre = f"blocks.{layer}.mlp."
        got = cache[pre + "hook_router_logits"].reshape(-1, cfg.num_experts)
        assert (got - logits).abs().max().item() <= 1e-5
        w = cache[pre + "hook_expert_weights"].reshape(len(got), -1)
        if cfg.d_mlp_shared:  # the shared expert's sigmoid gate is the last weight
            mlp = hf.model.layers[layer].mlp
            with torch.no_grad():
                gate = torch.sigmoid(mlp.shared_expert_gate(seen[layer]))
            assert (w[:, -1:] - gate.reshape(-1, 1)).abs().max().item() <= 1e-6
            w = w[:, :-1]
        want = torch.zeros_like(w).scatter(-1, idx, top)
        assert (w - want).abs().max().item() <= 1e-6
        sums = w.sum(-1)
        if cfg.experts_renormalize:
            assert (sums - 1).abs().max().item() <= 1e-6
        else:
            assert sums.max().item() < 1 - 1e-3  # the chosen experts keep their softmax share


def test_the_hub_layout_loads(tmp_path: Path) -> None:
    """Per-expert tensors (`mlp.experts.{e}.gate_proj.weight`, ...), as on the Hub."""
    hf = make_checkpoint("qwen3-moe", tmp_path)
    sd = load_file(str(tmp_path / "model.safetensors"))
    m = hf.config.moe_intermediate_size
    split: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k.endswith("experts.gate_up_proj"):
            base = k.removesuffix("gate_up_proj")
            for e in range(v.shape[0]):
                split[f"{base}{e}.gate_proj.weight"] = v[e, :m].contiguous()
                split[f"{base}{e}.up_proj.weight"] = v[e, m:].contiguous()
        elif k.endswith("experts.down_proj"):
            base = k.removesuffix("down_proj")
            for e in range(v.shape[0]):
                split[f"{base}{e}.down_proj.weight"] = v[e].contiguous()
        else:
            split[k] = v
    save_file(split, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    ours = load_model(tmp_path)
    tokens = _tokens(seed=14)
    with torch.no_grad():
        assert (hf(tokens).logits - ours(tokens)).abs().max().item() <= 1e-4


def test_dense_layers_are_refused_in_one_line(tmp_path: Path) -> None:
    make_checkpoint("qwen3-moe", tmp_path)
    f = tmp_path / "config.json"
    f.write_text(json.dumps(json.loads(f.read_text()) | {"mlp_only_layers": [1]}))
    with pytest.raises(UnsupportedArchitectureError, match="every layer sparse") as e:
        load_model(tmp_path)
    assert "\n" not in str(e.value)


def test_a_saved_mixture_loads_back(pair: Any, tmp_path: Path) -> None:
    from lenscope import save_model

    _, ours = pair
    back = load_model(save_model(ours, tmp_path / "m"))
    assert back.cfg == ours.cfg
    t = _tokens(seed=15)
    with torch.no_grad():
        assert torch.equal(back(t), ours(t))
