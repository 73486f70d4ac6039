"""The dictionary adapter fits transcoders (read one hook, write another) and cross-layer
transcoders (one read, several writes): splicing with the error kept is an exact identity, an
edited latent moves each written hook by exactly its decoder row, and without the error each
written hook holds the hand-computed reconstruction."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.sae import SAEConfig, SparseAutoencoder
from lenscope.sae.dictionary import Dictionary, check_compatible, splice
from tests.attribution.factory import random_model

READ = "blocks.0.ln2.hook_normalized"
OUTS = ("blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out")


def _transcoder(n_out: int, d: int = 32, n: int = 24, seed: int = 0) -> Dictionary:
    g = torch.Generator().manual_seed(seed)
    W_enc = torch.randn(d, n, generator=g, dtype=torch.float64) / d**0.5
    b_enc = torch.randn(n, generator=g, dtype=torch.float64) * 0.1
    decs = tuple(torch.randn(n, d, generator=g, dtype=torch.float64) / n**0.5 for _ in OUTS)
    bias = tuple(torch.randn(d, generator=g, dtype=torch.float64) * 0.1 for _ in OUTS)

    def encode(x: Tensor) -> Tensor:
        return (x.to(W_enc.dtype) @ W_enc + b_enc).relu()

    return Dictionary(READ, OUTS[:n_out], encode, decs[:n_out], bias[:n_out])


def _cache(model: Any, ids: Tensor, hooks: Any = ()) -> dict[str, Tensor]:
    with torch.no_grad(), model.hooks(fwd=list(hooks)):
        _, cache = model.run_with_cache(ids, names_filter=[READ, *OUTS])
    return {k: cache[k] for k in (READ, *OUTS)}


@pytest.mark.parametrize("n_out", [1, 2])
def test_transcoder_splice_is_exact_and_edits_move_each_output_by_its_row(n_out: int) -> None:
    model = random_model("gpt2").double()
    dic = _transcoder(n_out)
    check_compatible(model, dic)
    ids = torch.randint(0, 60, (2, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        clean = model(ids)
        sink: dict[str, Tensor] = {}
        kept = model.run_with_hooks(ids, fwd_hooks=splice(dic, keep_error=True, sink=sink))
    # the replacement plus its error is the MLP's own output (hooks only change fused paths)
    torch.testing.assert_close(kept, clean, atol=1e-12, rtol=0)
    base = _cache(model, ids)
    f = dic.encode(base[READ])
    torch.testing.assert_close(sink[READ], f)
    j = int(f[1, 4].argmax())
    assert float(f[1, 4, j]) > 0

    def ablate(lat: Tensor) -> Tensor:
        lat = lat.clone()
        lat[1, 4, j] = 0
        return lat

    # an edit at layer 0's read changes what the splice writes into every output hook; measure
    # the change at layer 0's output (nothing upstream of it changed)
    edited = _cache(model, ids, splice(dic, keep_error=True, edit=ablate))
    want = torch.zeros_like(base[OUTS[0]])
    want[1, 4] = -f[1, 4, j] * dic.decoders[0][j]
    torch.testing.assert_close(edited[OUTS[0]] - base[OUTS[0]], want)
    # without the error, layer 0's MLP output is the reconstruction from its own input
    replaced = _cache(model, ids, splice(dic))
    rec = f @ dic.decoders[0] + dic.biases[0]  # type: ignore[operator]
    torch.testing.assert_close(replaced[OUTS[0]], rec)
    if n_out == 2:  # the second output holds its reconstruction from the first layer's read
        x = replaced[READ]
        rec1 = dic.encode(x) @ dic.decoders[1] + dic.biases[1]  # type: ignore[operator]
        torch.testing.assert_close(replaced[OUTS[1]], rec1)
        with pytest.raises(InputError, match="use decoder"):
            _ = dic.W_dec


def test_dictionary_checks() -> None:
    model = random_model("gpt2")
    bad = Dictionary(READ, ("blocks.0.mlp.hook_post",), lambda x: x, (torch.zeros(4, 32),))
    with pytest.raises(InputError, match=r"blocks\.0\.mlp\.hook_post is 48-dimensional \(d_mlp\)"):
        check_compatible(model, bad)
    with pytest.raises(InputError, match="one decoder"):
        Dictionary(READ, OUTS, lambda x: x, (torch.zeros(4, 32),))
    with pytest.raises(InputError, match=r"writes blocks\.0\.hook_mlp_out, not"):
        _transcoder(1).decoder("blocks.1.hook_mlp_out")
    with pytest.raises(InputError, match="not one vector per token"):
        check_compatible(model, Dictionary.of(_sae(), "blocks.0.attn.hook_pattern"))
    with pytest.raises(InputError, match="does not say which hook"):
        Dictionary.of(SparseAutoencoder(SAEConfig(d_in=32, d_sae=8, k=2)))


def _sae() -> SparseAutoencoder:
    return SparseAutoencoder(SAEConfig(d_in=32, d_sae=8, k=2, hook_name="blocks.0.hook_resid_post"))


def test_adapted_sae_decodes_as_the_sae() -> None:
    for normalize in (False, True):
        cfg = SAEConfig(d_in=32, d_sae=16, k=3, hook_name=OUTS[0], normalize=normalize)
        sae = SparseAutoencoder(cfg, seed=4)
        dic = Dictionary.of(sae)
        assert dic.is_sae and dic.hook_in == OUTS[0] and dic.d_sae == 16
        x = torch.randn(5, 32, generator=torch.Generator().manual_seed(1)) * 3 + 1
        with torch.no_grad():
            torch.testing.assert_close(dic.decode(dic.latents(x), x), sae(x))
            # the linear part: what the latents write, scaled like the input
            lat = dic.latents(x)
            torch.testing.assert_close(
                dic.decode(lat, x) - dic.decode(torch.zeros_like(lat), x),
                dic.write(lat, x, OUTS[0]),
            )
        assert Dictionary.of(dic) is dic and dic.digest() == Dictionary.of(sae).digest()
