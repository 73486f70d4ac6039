"""TransformerLens spellings against TransformerLens itself: `get_act_name`, `model.OV` / `model.QK`,
`run_with_hooks(fwd_hooks=..., bwd_hooks=..., reset_hooks_end=..., return_type=...)`.

Both libraries load the same random-weight checkpoint that `transformers` saved (TransformerLens
through its own weight conversion), so every comparison is against an independent implementation.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import torch
from transformer_lens import HookedTransformer as TLModel
from transformer_lens import HookedTransformerConfig
from transformer_lens import utilities as tl_utils
from transformer_lens.pretrained.weight_conversions.gpt2 import convert_gpt2_weights
from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

from lenscope import FactoredMatrix, HookedTransformer, get_act_name, load_model
from lenscope.errors import InputError
from tests.model.hf_fixtures import VOCAB, make_checkpoint

KINDS = [
    "resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "embed", "pos_embed",
    "q", "k", "v", "z", "rot_q", "rot_k", "result", "pattern", "attn_scores",
    "pre", "post", "mid", "pre_linear", "scale", "normalized",
    "attn", "attn_logits", "key", "query", "value", "mlp_pre", "mlp_mid", "mlp_post",
]  # fmt: skip
LAYER_TYPES = [None, "a", "m", "b", "block", "blocks", "attention", "ln1", "ln2", "attn", "mlp"]


def test_get_act_name_matches_transformer_lens_on_every_spelling() -> None:
    n = 0
    for kind, layer, lt in itertools.product(KINDS, [None, 0, 3, 11], LAYER_TYPES):
        assert get_act_name(kind, layer, lt) == tl_utils.get_act_name(kind, layer, lt), (
            kind,
            layer,
            lt,
        )
        n += 1
    compact = ["k6", "scale4ln1", "pre5", "pattern0", "resid12", "normalized3ln2", "z2a", "post1m"]
    full = ["blocks.0.hook_resid_post", "hook_embed", "ln_final.hook_scale", "blocks.1.attn.hook_z"]
    for name in compact + full:
        assert get_act_name(name) == tl_utils.get_act_name(name), name
    assert n == len(KINDS) * 4 * len(LAYER_TYPES)
    # the examples in TransformerLens' docstring, literally
    assert get_act_name("resid_pre", 3) == "blocks.3.hook_resid_pre"
    assert get_act_name("k", 6, "a") == "blocks.6.attn.hook_k"
    assert get_act_name("scale4ln1") == "blocks.4.ln1.hook_scale"
    assert get_act_name("scale") == "ln_final.hook_scale"


@pytest.mark.parametrize("bad", [("", None), ("resid_pre", -1), ("resid_pre", True)])
def test_get_act_name_refuses_nonsense_in_one_line(bad: tuple[Any, Any]) -> None:
    with pytest.raises(InputError):
        get_act_name(*bad)


def _tl_gpt2(hf: Any) -> TLModel:
    c = hf.config
    cfg = HookedTransformerConfig(
        n_layers=c.n_layer, d_model=c.n_embd, n_heads=c.n_head, d_head=c.n_embd // c.n_head,
        d_mlp=4 * c.n_embd, d_vocab=c.vocab_size, n_ctx=c.n_positions, act_fn="gelu_new",
        normalization_type="LN", eps=c.layer_norm_epsilon, default_prepend_bos=False,
    )  # fmt: skip
    tl = TLModel(cfg)
    tl.load_state_dict(convert_gpt2_weights(hf, cfg), strict=False)
    return tl.eval()


def _tl_llama(hf: Any) -> TLModel:
    c = hf.config
    dh = c.hidden_size // c.num_attention_heads
    cfg = HookedTransformerConfig(
        n_layers=c.num_hidden_layers, d_model=c.hidden_size, n_heads=c.num_attention_heads,
        d_head=dh, n_key_value_heads=c.num_key_value_heads, d_mlp=c.intermediate_size,
        d_vocab=c.vocab_size, n_ctx=c.max_position_embeddings, act_fn="silu",
        normalization_type="RMS", positional_embedding_type="rotary", rotary_dim=dh,
        gated_mlp=True, final_rms=True, eps=c.rms_norm_eps,
    )  # fmt: skip
    tl = TLModel(cfg)
    tl.load_state_dict(convert_llama_weights(hf, cfg), strict=False)
    return tl.eval()


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory) -> tuple[HookedTransformer, TLModel]:
    d: Path = tmp_path_factory.mktemp("gpt2")
    hf = make_checkpoint("gpt2", d)
    return load_model(d).eval(), _tl_gpt2(hf)


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> tuple[HookedTransformer, TLModel]:
    d: Path = tmp_path_factory.mktemp("llama")
    hf = make_checkpoint("llama", d)
    return load_model(d).eval(), _tl_llama(hf)


def _tokens(n: int = 9, b: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (b, n), generator=g)


def test_the_two_models_agree_before_any_hook(gpt2: tuple[HookedTransformer, TLModel]) -> None:
    ours, tl = gpt2
    t = _tokens()
    with torch.no_grad():
        torch.testing.assert_close(ours(t), tl(t), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_ov_and_qk_match_transformer_lens(family: str, request: pytest.FixtureRequest) -> None:
    ours, tl = request.getfixturevalue(family)
    cfg = ours.cfg
    for name in ("OV", "QK"):
        mine, theirs = getattr(ours, name), getattr(tl, name)
        assert isinstance(mine, FactoredMatrix)
        assert tuple(mine.shape) == (cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_model)
        assert tuple(mine.shape) == tuple(theirs.shape)
        with torch.no_grad():
            torch.testing.assert_close(mine.AB, theirs.AB, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(mine.A, theirs.A, atol=1e-6, rtol=1e-6)
            torch.testing.assert_close(mine.B, theirs.B, atol=1e-6, rtol=1e-6)
            # one head, materialised by hand from the weights in TransformerLens' shapes
            layer, head = cfg.n_layers - 1, cfg.n_heads - 1
            if name == "OV":
                dense = tl.W_V[layer, head] @ tl.W_O[layer, head]
            else:
                dense = tl.W_Q[layer, head] @ tl.W_K[layer, head].T
            torch.testing.assert_close(mine[layer, head].AB, dense, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(
                mine.norm(), theirs.norm().to(mine.norm().dtype), atol=1e-4, rtol=1e-4
            )


def test_names_from_get_act_name_exist_in_both_models(
    gpt2: tuple[HookedTransformer, TLModel],
) -> None:
    ours, tl = gpt2
    shared = ["resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "q", "k", "v", "z"]
    shared += ["pattern", "attn_scores", "pre", "post", "attn", "key", "mlp_post"]
    for kind, layer in itertools.product(shared, range(ours.cfg.n_layers)):
        name = get_act_name(kind, layer)
        assert name in ours.hook_dict and name in tl.hook_dict, name
    for name in [get_act_name("embed"), get_act_name("pos_embed"), get_act_name("scale")]:
        assert name in ours.hook_dict and name in tl.hook_dict, name
    for layer, ln in itertools.product(range(ours.cfg.n_layers), ["ln1", "ln2"]):
        name = get_act_name("scale", layer, ln)
        assert name in ours.hook_dict and name in tl.hook_dict, name


def _ablate_head(head: int) -> Any:
    def fn(z: torch.Tensor, hook: Any) -> torch.Tensor:
        z = z.clone()
        z[:, :, head] = 0
        return z

    return fn


def _scale(x: torch.Tensor, hook: Any) -> torch.Tensor:
    return x * 0.5


def test_run_with_hooks_edits_as_transformer_lens_and_removes_its_hooks(
    gpt2: tuple[HookedTransformer, TLModel],
) -> None:
    ours, tl = gpt2
    t = _tokens(seed=1)
    hooks: list[tuple[Any, Any]] = [
        ("blocks.0.attn.hook_z", _ablate_head(1)),
        (lambda n: n.endswith("hook_mlp_out"), _scale),
    ]
    with torch.no_grad():
        plain = ours(t)
        mine = ours.run_with_hooks(t, fwd_hooks=hooks)
        theirs = tl.run_with_hooks(t, fwd_hooks=hooks)
        torch.testing.assert_close(mine, theirs, atol=1e-4, rtol=1e-4)
        assert (mine - plain).abs().max() > 1e-2  # the hooks changed the answer
        assert not any(hp.active for hp in ours.hook_dict.values())
        torch.testing.assert_close(ours(t), plain, atol=0, rtol=0)
        with ours.hooks(fwd_hooks=hooks) as m, tl.hooks(fwd_hooks=hooks) as theirs_m:
            torch.testing.assert_close(m(t), theirs_m(t), atol=1e-4, rtol=1e-4)
        assert not any(hp.active for hp in ours.hook_dict.values())
        for rt in ("loss", "both", None):
            got = ours.run_with_hooks(t, fwd_hooks=hooks, return_type=rt)
            want = tl.run_with_hooks(t, fwd_hooks=hooks, return_type=rt)
            if rt is None:
                assert got is None and want is None
            elif rt == "loss":
                torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
            else:
                assert isinstance(got, tuple) and isinstance(want, tuple)
                as_int32 = ours.run_with_hooks(t.int(), fwd_hooks=hooks, return_type=rt)
                torch.testing.assert_close(as_int32[1], want[1], atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(got[0], want[0], atol=1e-4, rtol=1e-4)
                torch.testing.assert_close(got[1], want[1], atol=1e-5, rtol=1e-5)
        assert not any(hp.active for hp in ours.hook_dict.values())


def test_run_with_hooks_both_from_text_counts_only_real_tokens(
    gpt2: tuple[HookedTransformer, TLModel],
) -> None:
    ours, _ = gpt2
    texts = ["w1 w2 w3 w4 w5", "w6 w7"]
    with torch.no_grad():
        logits, loss = ours.run_with_hooks(texts, return_type="both")
    # brute force: each prompt on its own, its mean loss weighted by its number of predictions
    losses, counts = [], []
    for text in texts:
        toks = ours.to_tokens(text)
        with torch.no_grad():
            losses.append(float(ours(toks, return_type="loss")) * (toks.shape[1] - 1))
        counts.append(toks.shape[1] - 1)
    assert float(loss) == pytest.approx(sum(losses) / sum(counts), rel=1e-5)
    assert logits.shape[:2] == (2, ours.to_tokens(texts[0]).shape[1])


def test_bwd_hooks_fire_with_the_gradients_transformer_lens_sees(
    gpt2: tuple[HookedTransformer, TLModel],
) -> None:
    ours, tl = gpt2
    t = _tokens(seed=2)
    names = ["blocks.1.hook_resid_post", "blocks.0.attn.hook_pattern", "hook_embed"]

    def grads_of(model: Any, **kw: Any) -> dict[str, torch.Tensor]:
        seen: dict[str, torch.Tensor] = {}

        def keep(g: torch.Tensor, hook: Any) -> None:
            seen[hook.name] = g.detach().clone()

        bwd: list[tuple[Any, Any]] = [(n, keep) for n in names]
        loss = model.run_with_hooks(t, bwd_hooks=bwd, return_type="loss", **kw)
        loss.backward()
        model.zero_grad(set_to_none=True)
        return seen

    mine = grads_of(ours)  # reset_hooks_end=True: lenscope's backward hooks still fire
    assert not any(hp.active for hp in ours.hook_dict.values())
    theirs = grads_of(tl, reset_hooks_end=False)  # TransformerLens needs its hooks kept
    tl.reset_hooks()
    assert set(mine) == set(names) == set(theirs)
    for n in names:
        torch.testing.assert_close(mine[n], theirs[n], atol=1e-5, rtol=1e-4)
    # and against autograd directly, on an activation captured with a forward hook
    acts: dict[str, torch.Tensor] = {}

    def grab(x: torch.Tensor, hook: Any) -> None:
        acts[hook.name] = x

    loss = ours.run_with_hooks(t, fwd_hooks=[(names[0], grab)], return_type="loss")
    (direct,) = torch.autograd.grad(loss, acts[names[0]])
    ours.zero_grad(set_to_none=True)
    torch.testing.assert_close(mine[names[0]], direct, atol=1e-6, rtol=1e-5)


def test_reset_hooks_end_false_keeps_the_hooks_until_reset(
    gpt2: tuple[HookedTransformer, TLModel],
) -> None:
    ours, _ = gpt2
    t = _tokens(seed=3)
    hooks: list[tuple[Any, Any]] = [("blocks.0.hook_mlp_out", _scale)]
    with torch.no_grad():
        plain = ours(t)
        once = ours.run_with_hooks(t, fwd_hooks=hooks, reset_hooks_end=False)
        try:
            assert ours.hook_dict["blocks.0.hook_mlp_out"].fwd_hooks == [_scale]
            torch.testing.assert_close(ours(t), once, atol=0, rtol=0)  # still attached
        finally:
            ours.reset_hooks()
        torch.testing.assert_close(ours(t), plain, atol=0, rtol=0)


def test_run_with_hooks_mistakes_are_one_line_and_attach_nothing(
    gpt2: tuple[HookedTransformer, TLModel],
) -> None:
    ours, _ = gpt2
    t = _tokens(seed=4)
    bad: list[tuple[Any, Any]] = [("blocks.0.hook_mlp_out", _scale), ("blocks.0.hook_nope", _scale)]
    for keep in (True, False):
        with pytest.raises(InputError, match="no hook point named"):
            ours.run_with_hooks(t, fwd_hooks=bad, reset_hooks_end=keep)
        assert not any(hp.active for hp in ours.hook_dict.values())
    with pytest.raises(InputError, match="return_type"):
        ours.run_with_hooks(t, return_type="probs")  # type: ignore[call-overload]
    with pytest.raises(InputError, match="stop_at_layer"):
        ours.run_with_hooks(t, return_type="both", stop_at_layer=1)  # type: ignore[call-overload]
