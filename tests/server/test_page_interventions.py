"""The interventions the debugger page sends (web/src/lib/interventions.ts builds exactly these
shapes: mean ablation over the page's prompts, resampling and patching from the second prompt,
steering along an SAE latent at its own hook or another) give the values of plain forward passes
with hand-written hooks, applied in the order listed."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from lenscope import HookedTransformer
from lenscope.sae import SparseAutoencoder
from tests.server.fixtures import PROMPT, QUESTION
from tests.server.test_debugger_routes import ids_of, logit_diff

OTHER = "w9 w2 w8 w4 w6 w1 w3 w3 w10"  # as many tokens as PROMPT
HEAD = 2  # L1.H2


def value(client: TestClient, interventions: list[dict[str, Any]], **extra: Any) -> float:
    body = {"prompt": PROMPT, "question": QUESTION, "top_k": 3, "measure": 0}
    r = client.post(
        "/api/why", json=body | {"interventions": {"interventions": interventions} | extra}
    )
    assert r.status_code == 200, r.text
    return float(r.json()["value"])


def cache(model: HookedTransformer, text: str, hook: str) -> torch.Tensor:
    with torch.no_grad():
        _, c = model.run_with_cache(torch.tensor([ids_of(model, text)]), names_filter=[hook])
    return c[hook]


def setter(sel: Any, new: torch.Tensor) -> Any:
    def fn(x: torch.Tensor, hook: Any) -> torch.Tensor:
        x = x.clone()
        x[sel] = new.to(x.dtype)
        return x

    return fn


def adder(positions: list[int] | None, vec: torch.Tensor) -> Any:
    def fn(x: torch.Tensor, hook: Any) -> torch.Tensor:
        x = x.clone()
        if positions is None:
            x += vec.to(x.dtype)
        else:
            x[:, positions] += vec.to(x.dtype)
        return x

    return fn


def test_lengths_match() -> None:
    assert len(OTHER.split()) == len(PROMPT.split())


def test_mean_ablation_over_the_pages_prompts(client: TestClient, model: HookedTransformer) -> None:
    hook = "blocks.1.attn.hook_z"
    z = torch.cat([cache(model, PROMPT, hook)[0], cache(model, OTHER, hook)[0]])  # every token
    mean = z[:, HEAD].mean(0)
    want = logit_diff(model, [(hook, setter((slice(None), slice(None), HEAD), mean))])
    got = value(
        client,
        [{"type": "ablate", "node": "L1.H2", "mode": "mean"}],
        reference=[PROMPT, OTHER],
    )
    assert abs(got - want) < 1e-4
    assert abs(want - logit_diff(model)) > 1e-3


def test_resample_and_patch_from_the_second_prompt(
    client: TestClient, model: HookedTransformer
) -> None:
    hook = "blocks.1.attn.hook_z"
    src = cache(model, OTHER, hook)
    want = logit_diff(model, [(hook, setter((slice(None), slice(None), HEAD), src[:, :, HEAD]))])
    got = value(client, [{"type": "ablate", "node": "L1.H2", "mode": "resample", "source": OTHER}])
    assert abs(got - want) < 1e-4 and abs(want - logit_diff(model)) > 1e-3

    resid = "blocks.0.hook_resid_post"
    src = cache(model, OTHER, resid)
    pos = [1, 4]
    want = logit_diff(model, [(resid, setter((slice(None), pos), src[:, pos]))])
    got = value(client, [{"type": "patch", "hook": resid, "source": OTHER, "positions": pos}])
    assert abs(got - want) < 1e-4 and abs(want - logit_diff(model)) > 1e-3


@pytest.mark.parametrize(
    ("hook", "positions"), [(None, None), ("blocks.1.hook_resid_pre", [3]), (None, [2, 5])]
)
def test_steering_along_a_latent(
    client: TestClient,
    model: HookedTransformer,
    sae: SparseAutoencoder,
    hook: str | None,
    positions: list[int] | None,
) -> None:
    direction = sae.W_dec[2].detach() * -3.0
    at = hook or "blocks.0.hook_resid_post"  # the latent's own hook by default
    want = logit_diff(model, [(at, adder(positions, direction))])
    iv: dict[str, Any] = {"type": "steer", "latent": "L0.resid_post.F2", "coefficient": -3.0}
    if hook:
        iv["hook"] = hook
    if positions:
        iv["positions"] = positions
    assert abs(value(client, [iv]) - want) < 1e-4
    assert abs(want - logit_diff(model)) > 1e-3


def test_interventions_apply_in_the_order_listed(
    client: TestClient, model: HookedTransformer, sae: SparseAutoencoder
) -> None:
    resid = "blocks.0.hook_resid_post"
    steer = {"type": "steer", "latent": "L0.resid_post.F2", "coefficient": 5.0}
    patch = {"type": "patch", "hook": resid, "source": OTHER}
    src = cache(model, OTHER, resid)
    direction = sae.W_dec[2].detach() * 5.0
    # steer then patch: the patch replaces the whole stream, steering included
    patched = logit_diff(model, [(resid, setter((slice(None),), src))])
    assert abs(value(client, [steer, patch]) - patched) < 1e-4
    # patch then steer: the other prompt's stream, steered
    both = logit_diff(
        model, [(resid, setter((slice(None),), src)), (resid, adder(None, direction))]
    )
    assert abs(value(client, [patch, steer]) - both) < 1e-4
    assert abs(both - patched) > 1e-3
