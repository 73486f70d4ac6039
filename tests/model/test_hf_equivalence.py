"""lenscope's conversion of Hugging Face checkpoints matches `transformers`' own forward pass."""

from __future__ import annotations

import pytest
import torch

from lenscope import linalg, load_model
from tests.model.hf_fixtures import NEWER, VOCAB, make_checkpoint
from tests.onednn import count_onednn_calls

FAMILIES = [
    "gpt2",
    "gpt2-untied",
    "neox",
    "neox-serial",
    "llama",
    "mistral",
    "qwen2",
    "mistral-sliding",
    "qwen2-sliding",
    *NEWER,
]


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp(request.param)
    hf = make_checkpoint(request.param, d)
    return hf, load_model(d)


def test_logits_match(pair) -> None:
    hf, ours = pair
    tokens = torch.randint(0, VOCAB, (3, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(tokens).logits
        got = ours(tokens)
    assert (ref - got).abs().max().item() <= 1e-4


def test_hidden_states_match_every_layer(pair) -> None:
    hf, ours = pair
    tokens = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        hs = hf(tokens, output_hidden_states=True).hidden_states
        _, cache = ours.run_with_cache(tokens)
    n = ours.cfg.n_layers
    assert len(hs) == n + 1
    for layer in range(n):
        got = cache[f"blocks.{layer}.hook_resid_pre"]
        assert (hs[layer] - got).abs().max().item() <= 1e-4, layer
    # transformers applies the final norm to the last hidden state.
    last = ours.ln_final(cache[f"blocks.{n - 1}.hook_resid_post"])
    assert (hs[n] - last).abs().max().item() <= 1e-4


def test_greedy_generation_matches(pair) -> None:
    hf, ours = pair
    prompt = torch.randint(2, VOCAB, (1, 5), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = hf.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=20,
            do_sample=False,
            pad_token_id=0,
        )
    got = ours.generate(prompt, max_new_tokens=20)
    assert ref[0].tolist() == got[0].tolist()


def test_padded_batch_matches_single_prompts(pair) -> None:
    _, ours = pair
    a = torch.randint(2, VOCAB, (9,), generator=torch.Generator().manual_seed(4))
    b = a[:5]
    for side in ("right", "left"):
        toks = torch.zeros(2, 9, dtype=torch.long)
        mask = torch.zeros(2, 9, dtype=torch.long)
        toks[0], mask[0] = a, 1
        sl = slice(0, 5) if side == "right" else slice(4, 9)
        toks[1, sl], mask[1, sl] = b, 1
        with torch.no_grad():
            out = ours(toks, attention_mask=mask)
            single = ours(b[None])[0]
        assert (out[0] - ours(a[None])[0]).abs().max().item() <= 1e-4
        assert (out[1, sl] - single).abs().max().item() <= 1e-4, side


def test_tokenizer_loaded(pair) -> None:
    _, ours = pair
    assert ours.tokenizer is not None
    toks = ours.to_tokens("w1 w2 w3", prepend_bos=False)
    assert toks.tolist() == [[3, 4, 5]]
    assert ours.to_str_tokens(toks[0]) == ["w1", "w2", "w3"]


@pytest.mark.skipif(not linalg._AVAILABLE, reason="this torch build has no oneDNN linear kernel")
def test_every_matmul_through_onednn_matches_transformers(
    pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """These checkpoints are too small for `lenscope.linalg`'s oneDNN path, which real models
    take: force it for every matmul and compare logits and the gradient of a logit with respect
    to the embeddings (through our autograd Function) with transformers' own."""
    hf, ours = pair
    monkeypatch.setattr(linalg, "MIN_MACS", 0)
    previous = linalg.set_onednn(True)
    calls = count_onednn_calls(monkeypatch)
    try:
        tokens = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(5))
        out = hf(tokens, output_hidden_states=True)
        emb = out.hidden_states[0]
        emb.retain_grad()
        out.logits[:, -1, 7].sum().backward()
        kept: list[torch.Tensor] = []

        def keep(x: torch.Tensor, hook: object) -> torch.Tensor:
            x.retain_grad()
            kept.append(x)
            return x

        with ours.hooks(fwd=[("blocks.0.hook_resid_pre", keep)]):
            got = ours(tokens)
        got[:, -1, 7].sum().backward()
        assert len(calls) >= 4 * ours.cfg.n_layers  # blocks, unembedding, their backward
        assert (out.logits - got).abs().max().item() <= 1e-4
        assert emb.grad is not None and kept[0].grad is not None
        assert (emb.grad - kept[0].grad).abs().max().item() <= 1e-4
    finally:
        linalg.set_onednn(previous)
        ours.zero_grad(set_to_none=True)
        hf.zero_grad(set_to_none=True)
