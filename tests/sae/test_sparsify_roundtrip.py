"""sparsify itself (eai-sparsify, a dev dependency) loads lenscope's sparsify exports unchanged:
`SparseCoder.load_from_disk` on the folders `export_sparsify` / `export_sparsify_transcoder` write,
then its own encode and decode against lenscope's, and lenscope reads sparsify's own saves back."""

from __future__ import annotations

from pathlib import Path

import sparsify  # eai-sparsify: a dev dependency (pyproject), so this test never skips
import torch

from lenscope.sae import SAEConfig, SparseAutoencoder, export_sparsify, import_sae
from lenscope.sae.transcoder_formats import export_sparsify_transcoder
from tests.sae.helpers import random_transcoder, tiny_model


def _dense(sc: object, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sparsify's latents (scattered dense) and its reconstruction of `x`."""
    acts, idx, _ = sc.encode(x)  # type: ignore[attr-defined]
    y = sc.decode(acts, idx)  # type: ignore[attr-defined]
    n = sc.num_latents  # type: ignore[attr-defined]
    return torch.zeros(x.shape[0], n).scatter(-1, idx, acts), y


def test_sparsify_loads_our_sae_export(tmp_path: Path) -> None:
    cfg = SAEConfig(d_in=32, d_sae=128, k=8, hook_name="blocks.0.hook_resid_post")
    sae = SparseAutoencoder(cfg, seed=3).requires_grad_(False)
    sae.b_dec.normal_(0, 0.2, generator=torch.Generator().manual_seed(1))
    export_sparsify(sae, tmp_path / "layers.0")
    sc = sparsify.SparseCoder.load_from_disk(str(tmp_path / "layers.0"))
    assert sc.cfg.k == 8 and not sc.cfg.transcode
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        lat, y = _dense(sc, x)
        torch.testing.assert_close(lat, sae.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(y, sae(x), atol=1e-5, rtol=1e-5)


def test_sparsify_loads_our_transcoder_export(tmp_path: Path) -> None:
    model = tiny_model()
    ln = model.blocks[1].ln2
    with torch.no_grad():
        ln.w.copy_(torch.linspace(0.5, 1.5, 32))
        ln.b.copy_(torch.linspace(-0.3, 0.3, 32))
    t = random_transcoder(1, activation="topk", dtype=torch.float32).requires_grad_(False)
    export_sparsify_transcoder(t, tmp_path / "layers.1.mlp", model)
    sc = sparsify.SparseCoder.load_from_disk(str(tmp_path / "layers.1.mlp"))
    assert sc.cfg.transcode
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(7))  # ln2's normalised output
    with torch.no_grad():
        lat, y = _dense(sc, x * ln.w + ln.b)  # sparsify reads the MLP module's input
        torch.testing.assert_close(lat, t.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(y, t(x), atol=1e-5, rtol=1e-5)


def test_we_load_what_sparsify_saves(tmp_path: Path) -> None:
    sc_cfg = sparsify.SparseCoderConfig(num_latents=96, k=6)
    sc = sparsify.SparseCoder(32, sc_cfg, device="cpu", dtype=torch.float32)
    with torch.no_grad():
        sc.b_dec.normal_(0, 0.2, generator=torch.Generator().manual_seed(2))
    sc.save_to_disk(str(tmp_path / "layers.2"))
    sae = import_sae(tmp_path / "layers.2")
    assert sae.cfg.hook_name == "blocks.2.hook_resid_post"
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        lat, y = _dense(sc, x)
        torch.testing.assert_close(sae.encode(x), lat, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(sae(x), y, atol=1e-5, rtol=1e-5)
