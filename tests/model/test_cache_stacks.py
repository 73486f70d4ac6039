"""ActivationCache stacks (accumulated_resid, decompose_resid, stack_head_results,
apply_ln_to_stack) against independent computations on small random models of every family."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from lenscope import ActivationCache, HookedTransformer, ModelConfig
from lenscope.errors import InputError
from tests.model.test_transformer import CONFIGS as BASE

SMALL = {"d_model": 32, "n_heads": 4, "d_vocab": 50, "n_ctx": 16}
CONFIGS = {
    # test_transformer's families (attention-only without norms, RMSNorm/rotary/GQA/gated,
    # parallel attention+MLP), plus an unembedding bias and a normed attention-only model
    **BASE,
    "gpt2": ModelConfig(n_layers=2, unembed_bias=True, **SMALL),  # LayerNorm, learned positions
    "attn_only_ln": ModelConfig(n_layers=3, attn_only=True, tie_embeddings=True, **SMALL),
}
ATOL = 2e-5


def _random(cfg: ModelConfig, seed: int = 0) -> HookedTransformer:
    torch.manual_seed(seed)
    m = HookedTransformer(cfg)
    with torch.no_grad():
        for p in m.parameters():  # norm weights and biases too, so that none is trivial
            p.add_(torch.randn_like(p) * 0.3)
    return m.eval()


@pytest.fixture(params=list(CONFIGS))
def model(request: pytest.FixtureRequest) -> HookedTransformer:
    return _random(CONFIGS[request.param])


def tokens(b: int = 2, p: int = 7) -> Tensor:
    return torch.randint(0, 50, (b, p), generator=torch.Generator().manual_seed(1))


def run(model: HookedTransformer, names_filter: object = None) -> tuple[Tensor, ActivationCache]:
    logits, c = model.run_with_cache(tokens(), names_filter=names_filter)  # type: ignore[arg-type]
    assert c.model is model  # run_with_cache's cache knows its model
    return logits, c


def close(a: Tensor, b: Tensor) -> None:
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-5)


def boundary(model: HookedTransformer, k: int) -> Tensor:
    """The residual entering block k (k = n_layers: the final one), by a separate forward."""
    if k < model.cfg.n_layers:
        return model(tokens(), stop_at_layer=k)  # type: ignore[no-any-return]
    return model.run_with_cache(tokens(), names_filter="blocks.*.hook_resid_post")[1][
        f"blocks.{k - 1}.hook_resid_post"
    ]


# ---- accumulated_resid -------------------------------------------------------------------------
def test_accumulated_resid_is_every_boundary(model: HookedTransformer) -> None:
    n = model.cfg.n_layers
    _, cache = run(model)
    stack, labels = cache.accumulated_resid(return_labels=True)
    assert labels == [f"{i}_pre" for i in range(n)] + ["final_post"]
    assert stack.shape == (n + 1, 2, 7, 32)
    for k in range(n + 1):
        close(stack[k], boundary(model, k))
    for layer in range(n + 1):  # up to the input of `layer`
        assert torch.equal(cache.accumulated_resid(layer=layer), stack[: layer + 1])
    assert torch.equal(cache.accumulated_resid(layer=-1), stack)
    assert not stack.requires_grad


def test_accumulated_resid_with_mids() -> None:
    model = _random(CONFIGS["gpt2"])
    _, cache = run(model)
    stack, labels = cache.accumulated_resid(incl_mid=True, return_labels=True)
    assert labels == ["0_pre", "0_mid", "1_pre", "1_mid", "final_post"]
    assert torch.equal(stack[1], cache["blocks.0.hook_resid_mid"])
    assert torch.equal(stack[3], cache["blocks.1.hook_resid_mid"])
    assert cache.accumulated_resid(layer=1, incl_mid=True, return_labels=True)[1] == [
        "0_pre",
        "0_mid",
        "1_pre",
    ]


def test_accumulated_resid_apply_ln_is_the_logit_lens(model: HookedTransformer) -> None:
    """The final norm recomputed from each residual: the last boundary gives the model's logits,
    every boundary what the final norm module (its fast path) makes of that residual."""
    logits, cache = run(model)
    lens = cache.accumulated_resid(apply_ln=True)
    close(model.unembed_resid(lens)[-1], logits)
    for k in range(model.cfg.n_layers + 1):
        close(lens[k], model.ln_final(boundary(model, k)).detach())
    # a layer before the end still uses the final norm (the logit lens of boundaries 0..layer)
    close(cache.accumulated_resid(layer=1, apply_ln=True), lens[:2])


# ---- decompose_resid ---------------------------------------------------------------------------
def test_decompose_resid_sums_to_the_residual(model: HookedTransformer) -> None:
    cfg = model.cfg
    _, cache = run(model)
    stack, labels = cache.decompose_resid(return_labels=True)
    want = ["embed"] + (["pos_embed"] if cfg.positional == "learned" else [])
    for i in range(cfg.n_layers):
        want += [f"{i}_attn_out"] + ([] if cfg.attn_only else [f"{i}_mlp_out"])
    assert labels == want
    for k in range(cfg.n_layers + 1):
        close(cache.decompose_resid(layer=k).sum(0), boundary(model, k))
    attn = cache.decompose_resid(mode="attn", incl_embeds=False)
    mlp = cache.decompose_resid(mode="mlp", incl_embeds=False)
    embeds = stack[: len(want) - len(attn) - len(mlp)]
    close(embeds.sum(0) + attn.sum(0) + mlp.sum(0), stack.sum(0))
    assert len(attn) == cfg.n_layers and len(mlp) == (0 if cfg.attn_only else cfg.n_layers)
    assert mlp.shape[1:] == stack.shape[1:]


def test_decompose_resid_apply_ln_sums_to_the_normalised_residual(
    model: HookedTransformer,
) -> None:
    """With the residual's cached scale the norm is linear: the pieces sum to norm(resid) - b,
    so unembedding their sum (plus b) gives the logits."""
    logits, cache = run(model)
    n = model.cfg.n_layers
    for k in range(n + 1):
        norm = model.ln_final if k == n else model.blocks[k].ln1
        b = norm.b.detach() if norm.b is not None else 0.0
        total = cache.decompose_resid(layer=k, apply_ln=True).sum(0)
        close(total + b, norm(boundary(model, k)).detach())
        if k == n:
            close(model.unembed_resid(total + b), logits)


# ---- stack_head_results ------------------------------------------------------------------------
def test_head_results_brute_force_and_sum_to_attn_out(model: HookedTransformer) -> None:
    cfg = model.cfg
    h, dh = cfg.n_heads, cfg.d_head
    _, cache = run(model)
    stack, labels = cache.stack_head_results(return_labels=True)
    assert labels == [f"L{i}H{j}" for i in range(cfg.n_layers) for j in range(h)]
    assert stack.shape == (cfg.n_layers * h, 2, 7, 32)
    for i in range(cfg.n_layers):
        attn = model.blocks[i].attn
        z = cache[f"blocks.{i}.attn.hook_z"]
        for j in range(h):  # the head's slice of the fused output projection, one by one
            want = z[:, :, j] @ attn.w_o[j * dh : (j + 1) * dh].detach()
            close(stack[i * h + j], want)
        close(stack[i * h : (i + 1) * h].sum(0) + attn.b_O.detach(), cache[("attn_out", i)])
        assert torch.equal(cache.stack_head_results(layer=i + 1), stack[: (i + 1) * h])


def test_head_results_remainder_and_apply_ln(model: HookedTransformer) -> None:
    _, cache = run(model)
    n = model.cfg.n_layers
    with_rest, labels = cache.stack_head_results(incl_remainder=True, return_labels=True)
    assert labels[-1] == "remainder"
    close(with_rest.sum(0), boundary(model, n))
    normed = cache.stack_head_results(incl_remainder=True, apply_ln=True)
    close(normed, cache.apply_ln_to_stack(with_rest))
    b = model.ln_final.b.detach() if model.ln_final.b is not None else 0.0
    close(normed.sum(0) + b, model.ln_final(boundary(model, n)).detach())


def test_layer_zero_is_an_empty_stack() -> None:
    _, cache = run(_random(CONFIGS["gpt2"]))
    assert cache.stack_head_results(layer=0).shape == (0, 2, 7, 32)
    assert cache.decompose_resid(layer=0, incl_embeds=False).shape == (0, 2, 7, 32)
    assert cache.accumulated_resid(layer=0, return_labels=True)[1] == ["0_pre"]
    rest = cache.stack_head_results(layer=0, incl_remainder=True, pos_slice=2)
    close(rest[0], cache["blocks.0.hook_resid_pre"][:, 2])


# ---- apply_ln_to_stack -------------------------------------------------------------------------
def test_apply_ln_to_stack_brute_force(model: HookedTransformer) -> None:
    """Element by element: centre (LayerNorm), divide by the cached scale, times the weight."""
    cfg = model.cfg
    _, cache = run(model)
    stack = torch.randn(3, 2, 7, 32, generator=torch.Generator().manual_seed(2))
    for k in range(cfg.n_layers + 1):
        norm = model.ln_final if k == cfg.n_layers else model.blocks[k].ln1
        got = cache.apply_ln_to_stack(stack, layer=k)
        if norm.w is None:
            assert torch.equal(got, stack)
            continue
        name = "ln_final.hook_scale" if k == cfg.n_layers else f"blocks.{k}.ln1.hook_scale"
        scale = cache[name]
        want = torch.empty_like(stack)
        for r in range(3):
            for b in range(2):
                for p in range(7):
                    v = stack[r, b, p]
                    if cfg.normalization == "LN":
                        v = v - v.mean()
                    want[r, b, p] = v / scale[b, p, 0] * norm.w.detach()
        close(got, want)
    assert torch.equal(cache.apply_ln_to_stack(stack, layer=-1), cache.apply_ln_to_stack(stack))


# ---- pos_slice ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pos_slice", "index"),
    [(3, 3), (-1, -1), (slice(1, 5), slice(1, 5)), ((2, 6, 2), slice(2, 6, 2)), ([0, 4], [0, 4])],
)
def test_pos_slice_cuts_positions(pos_slice: object, index: object) -> None:
    model = _random(CONFIGS["parallel"])
    _, cache = run(model)
    for fn in (cache.accumulated_resid, cache.decompose_resid, cache.stack_head_results):
        for apply_ln in (False, True):
            full = fn(apply_ln=apply_ln)
            close(fn(pos_slice=pos_slice, apply_ln=apply_ln), full[:, :, index])  # type: ignore[index]
    whole = cache.decompose_resid()
    cut = cache.decompose_resid(pos_slice=pos_slice)
    close(
        cache.apply_ln_to_stack(cut, pos_slice=pos_slice),
        cache.apply_ln_to_stack(whole)[:, :, index],
    )  # type: ignore[index]


def test_zero_layer_model() -> None:
    model = _random(ModelConfig(n_layers=0, **SMALL))
    logits, cache = run(model)
    stack, labels = cache.accumulated_resid(apply_ln=True, return_labels=True)
    assert labels == ["final_post"]
    close(model.unembed_resid(stack[0]), logits)
    close(cache.decompose_resid().sum(0), cache["hook_embed"] + cache["hook_pos_embed"])


# ---- bad input ---------------------------------------------------------------------------------
def _one_line(e: pytest.ExceptionInfo[InputError]) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_bad_layer_and_mode() -> None:
    _, cache = run(_random(CONFIGS["gpt2"]))
    calls = {
        "accumulated_resid": cache.accumulated_resid,
        "decompose_resid": cache.decompose_resid,
        "stack_head_results": cache.stack_head_results,
    }
    for bad in (3, -4, 100):
        for name, fn in calls.items():
            with pytest.raises(InputError) as e:
                fn(layer=bad)
            assert name in _one_line(e) and "0..2" in str(e.value)
        with pytest.raises(InputError) as e:
            cache.apply_ln_to_stack(torch.zeros(1, 2, 7, 32), layer=bad)
        assert "0..2" in _one_line(e)
    with pytest.raises(InputError) as e:
        cache.decompose_resid(mode="heads")  # type: ignore[call-overload]
    assert "all, attn, mlp" in _one_line(e)
    with pytest.raises(InputError) as e:
        cache.apply_ln_to_stack(torch.zeros(1, 2, 7, 31))
    _one_line(e)
    with pytest.raises(InputError) as e:
        cache.apply_ln_to_stack(torch.zeros(1, 2, 5, 32))  # cut without saying how
    assert "pos_slice" in _one_line(e)
    with pytest.raises(InputError) as e:
        cache.accumulated_resid(pos_slice=7)
    _one_line(e)


def test_missing_hooks_name_the_filter_to_use() -> None:
    model = _random(CONFIGS["modern"])
    _, cache = run(model, names_filter="blocks.*.hook_resid_pre")
    with pytest.raises(InputError) as e:
        cache.stack_head_results()
    msg = _one_line(e)
    assert "names_filter=['blocks.*.attn.hook_z']" in msg
    _, cache = run(model, names_filter=["blocks.*.attn.hook_z"])
    assert cache.stack_head_results().shape == (8, 2, 7, 32)
    with pytest.raises(InputError) as e:
        cache.stack_head_results(apply_ln=True)
    assert "ln_final.hook_scale" in _one_line(e)
    with pytest.raises(InputError) as e:
        cache.decompose_resid()
    assert "blocks.*.hook_mlp_out" in _one_line(e)
    with pytest.raises(InputError) as e:
        cache.accumulated_resid()
    assert "blocks.*.hook_resid_post" in _one_line(e)


def test_no_mids_in_parallel_or_attention_only_blocks() -> None:
    for name in ("parallel", "attn_only_ln"):
        _, cache = run(_random(CONFIGS[name]))
        with pytest.raises(InputError) as e:
            cache.accumulated_resid(incl_mid=True)
        assert "resid_mid" in _one_line(e)


def test_a_cache_without_its_model() -> None:
    model = _random(CONFIGS["gpt2"])
    _, c = model.run_with_cache(tokens())
    bare = ActivationCache(c.to_dict(), model.cfg.n_layers)
    with pytest.raises(InputError) as e:
        bare.decompose_resid()
    assert "model=model" in _one_line(e)
    with pytest.raises(InputError):
        ActivationCache(c.to_dict(), 3, model=model)
