"""lenscope's sparsify exports (TopK SAEs and transcoders) against sparsify's format as its
source defines it (eai-sparsify 1.3.3, `sparsify/config.py` and `sparsify/sparse_coder.py`):
`cfg.json` holds `SparseCoderConfig`'s fields plus `d_in`; `SparseCoder.load_from_disk` pops
d_in, builds `encoder = Linear(d_in, num_latents or d_in * expansion_factor)`, `W_dec` shaped like
`encoder.weight`, `b_dec [d_in]` (and `W_skip` only with skip_connection) and loads
`sae.safetensors` strictly; its forward is relu(encoder(x [- b_dec unless transcode])), the top
k, their W_dec rows summed, + b_dec. The check that sparsify itself loads these files is by hand,
in a side environment (docs/sae.md, "Published dictionaries")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from lenscope.errors import InputError
from lenscope.sae import SAEConfig, SparseAutoencoder, export_sparsify
from lenscope.sae.transcoder_formats import (
    export_sparsify_transcoder,
    load_sparsify_transcoder,
    load_transcoders,
)
from tests.sae.helpers import random_transcoder, tiny_model

# sparsify 1.3.3's SparseCoderConfig fields, in order, and the one key save_to_disk adds
SPARSIFY_FIELDS = (
    "activation", "expansion_factor", "normalize_decoder", "num_latents", "k", "multi_topk",
    "skip_connection", "transcode",
)  # fmt: skip


def sparsify_load(d: Path) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    """What `SparseCoder.load_from_disk` checks, done by hand: config fields and strict shapes."""
    cfg = json.loads((d / "cfg.json").read_text())
    assert set(cfg) == {*SPARSIFY_FIELDS, "d_in"}
    assert cfg["activation"] in ("groupmax", "topk") and cfg["skip_connection"] is False
    d_in = int(cfg["d_in"])
    n = int(cfg["num_latents"]) or d_in * int(cfg["expansion_factor"])
    sd = load_file(str(d / "sae.safetensors"))
    want = {"encoder.weight": (n, d_in), "encoder.bias": (n,), "W_dec": (n, d_in), "b_dec": (d_in,)}
    assert {k: v.shape for k, v in sd.items()} == want
    assert all(v.dtype == np.float32 for v in sd.values())
    return cfg, {k: v.astype(np.float64) for k, v in sd.items()}


def sparsify_forward(
    cfg: dict[str, object], sd: dict[str, np.ndarray], x: np.ndarray
) -> np.ndarray:
    if not cfg["transcode"]:
        x = x - sd["b_dec"]
    pre = np.maximum(x @ sd["encoder.weight"].T + sd["encoder.bias"], 0.0)
    k = int(cfg["k"])  # type: ignore[call-overload]
    idx = np.argsort(-pre, axis=-1)[..., :k]
    vals = np.take_along_axis(pre, idx, -1)
    return np.einsum("tk,tkd->td", vals, sd["W_dec"][idx]) + sd["b_dec"]


def test_sae_export_is_sparsify_format(tmp_path: Path) -> None:
    sae = SparseAutoencoder(SAEConfig(d_in=16, d_sae=64, k=5, hook_name="blocks.0.hook_resid_post"))
    with torch.no_grad():
        sae.b_dec.normal_(0, 0.2, generator=torch.Generator().manual_seed(1))
    export_sparsify(sae, tmp_path / "layers.0")
    cfg, sd = sparsify_load(tmp_path / "layers.0")
    assert cfg["transcode"] is False and cfg["k"] == 5 and cfg["num_latents"] == 64
    x = np.random.default_rng(0).normal(size=(30, 16))
    with torch.no_grad():
        ours = sae(torch.tensor(x, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(sparsify_forward(cfg, sd, x), ours, rtol=1e-4, atol=1e-5)


def test_transcoder_export_is_sparsify_format_and_round_trips(tmp_path: Path) -> None:
    model = tiny_model()
    ln = model.blocks[1].ln2
    with torch.no_grad():  # a norm whose weight and bias matter
        ln.w.copy_(torch.linspace(0.5, 1.5, 32))
        ln.b.copy_(torch.linspace(-0.3, 0.3, 32))
    t = random_transcoder(1, activation="topk", dtype=torch.float32).requires_grad_(False)
    out = export_sparsify_transcoder(t, tmp_path / "layers.1.mlp", model)
    cfg, sd = sparsify_load(out)
    assert cfg["transcode"] is True and cfg["k"] == 6 and cfg["num_latents"] == 40
    # sparsify reads the MLP's input (ln2's output); lenscope reads ln2's normalised input
    xn = torch.randn(30, 32, generator=torch.Generator().manual_seed(2))
    mlp_in = (xn * ln.w + ln.b).detach().double().numpy()
    with torch.no_grad():
        ours = t(xn).double().numpy()
    np.testing.assert_allclose(sparsify_forward(cfg, sd, mlp_in), ours, rtol=1e-4, atol=1e-5)
    back = load_sparsify_transcoder(out, model=model)  # named by its hookpoint: layers.1.mlp
    assert back.cfg.hook_in == t.cfg.hook_in and back.cfg.hook_out == t.cfg.hook_out
    with torch.no_grad():
        torch.testing.assert_close(back(xn), t(xn), atol=1e-5, rtol=1e-5)
    (again,) = load_transcoders(out, model=model)
    with torch.no_grad():
        torch.testing.assert_close(again.encode(xn), t.encode(xn), atol=1e-5, rtol=1e-5)


def test_bad_sparsify_transcoder_exports(tmp_path: Path) -> None:
    model = tiny_model()
    relu = random_transcoder(0, dtype=torch.float32)
    with pytest.raises(InputError, match="TopK transcoders only"):
        export_sparsify_transcoder(relu, tmp_path / "a", model)
    mid = random_transcoder(0, reads="resid_mid", activation="topk", dtype=torch.float32)
    with pytest.raises(InputError, match="pass the model"):
        export_sparsify_transcoder(mid, tmp_path / "b", model)
