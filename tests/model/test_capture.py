"""The one activation capture: widths from the config equal the widths a forward pass produces,
and captured batches equal `run_with_cache` on the same tokens (encoded when asked)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.model.capture import (
    NOT_PER_TOKEN,
    capture,
    capture_all,
    check_hook,
    hook_width,
    iter_activations,
    stop_for,
)
from tests.attribution.factory import CONFIGS, random_model


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_hook_width_from_config_equals_the_forward(kind: str) -> None:
    model = random_model(kind)
    ids = torch.randint(0, 60, (2, 5), generator=torch.Generator().manual_seed(0))
    _, cache = model.run_with_cache(ids)
    seen = 0
    for name in model.hook_names():
        if name.endswith(NOT_PER_TOKEN):
            with pytest.raises(InputError, match="not one vector per token"):
                check_hook(model, name)
            continue
        if name not in cache:  # a hook this block type never runs (resid_mid of parallel blocks)
            continue
        a = cache[name]
        width = a.reshape(*a.shape[:2], -1).shape[-1]
        assert hook_width(model.cfg, name) == width, name
        seen += 1
    assert seen >= 8 * model.cfg.n_layers


def test_capture_equals_run_with_cache_and_encodes() -> None:
    model = random_model("rotary_rms_gqa")
    ids = torch.randint(0, 60, (5, 7), generator=torch.Generator().manual_seed(1))
    hooks = ["blocks.0.attn.hook_z", "blocks.0.hook_resid_post", "hook_embed"]
    _, cache = model.run_with_cache(ids, names_filter=hooks)
    W = torch.randn(32, 6, generator=torch.Generator().manual_seed(2))

    def encode(x: Tensor) -> Tensor:
        assert x.ndim == 2  # rows of one vector per token
        return (x @ W).relu()

    got = capture_all(model, ids, hooks, encode={"blocks.0.hook_resid_post": encode})
    torch.testing.assert_close(
        got["blocks.0.attn.hook_z"], cache["blocks.0.attn.hook_z"].flatten(2)
    )
    torch.testing.assert_close(got["hook_embed"], cache["hook_embed"])
    torch.testing.assert_close(
        got["blocks.0.hook_resid_post"], (cache["blocks.0.hook_resid_post"] @ W).relu()
    )
    assert stop_for(hooks, 2) == 1 and stop_for(["ln_final.hook_scale"], 2) is None
    torch.testing.assert_close(capture(model, ids, "hook_embed"), cache["hook_embed"])
    # streamed in batches of 2 windows: the same rows, in order, bounded to one batch at a time
    batches = list(iter_activations(model, iter(ids.split(3)), hooks[1:2], batch_size=2))
    assert [b[hooks[1]].shape[0] for b in batches] == [14, 14, 7]
    rows = torch.cat([b[hooks[1]] for b in batches])
    torch.testing.assert_close(rows, cache[hooks[1]].reshape(-1, 32))
    with pytest.raises(InputError, match="has no hook point"):
        check_hook(model, "blocks.0.hook_nothing")
    with pytest.raises(InputError, match="not a per-token hook point"):
        hook_width(model.cfg, "blocks.0.hook_nothing")
