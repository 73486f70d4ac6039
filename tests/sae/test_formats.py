"""Formats: SAELens itself loads our export (same latents and reconstruction); SAELens, OpenAI and
sparsify files import to SAEs that compute what those libraries' formulas compute."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from lenscope.errors import ArtifactError
from lenscope.sae import SAEConfig, SparseAutoencoder
from lenscope.sae.formats import (
    export_saelens,
    export_sparsify,
    import_openai,
    import_sae,
    import_saelens,
    import_sparsify,
)

X = torch.randn(40, 16, generator=torch.Generator().manual_seed(0)) * 2 + 0.5


def _sae(arch: str, normalize: bool = False, seed: int = 1) -> SparseAutoencoder:
    cfg = SAEConfig(
        d_in=16,
        d_sae=64,
        architecture=arch,
        k=None if arch == "relu" else 4,
        normalize=normalize,
        hook_name="blocks.0.hook_resid_post",
        model_name="tiny",
    )
    sae = SparseAutoencoder(cfg, seed=seed)
    sae.init_from_data(X)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1, generator=torch.Generator().manual_seed(seed))
        sae.threshold.fill_(0.05)
    return sae.eval()


@pytest.mark.parametrize(
    ("arch", "normalize"), [("topk", False), ("topk", True), ("relu", False), ("batchtopk", True)]
)
def test_saelens_loads_our_export(tmp_path: Path, arch: str, normalize: bool) -> None:
    from sae_lens import SAE

    ours = _sae(arch, normalize)
    export_saelens(ours, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SAE.load_from_disk(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(theirs.encode(X), ours.encode(X), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(theirs(X), ours(X), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.reconstruct(X), ours(X), atol=1e-5, rtol=1e-5)
    back = import_saelens(tmp_path)
    assert back.cfg.hook_name == "blocks.0.hook_resid_post" and back.cfg.normalize == normalize
    torch.testing.assert_close(back(X), ours(X), atol=1e-6, rtol=1e-6)


def test_import_saelens_trained_layout_with_decoder_norm_rescaling(tmp_path: Path) -> None:
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = TopKSAE(TopKSAEConfig(d_in=16, d_sae=64, k=5, rescale_acts_by_decoder_norm=True))
    with torch.no_grad():
        g = torch.Generator().manual_seed(3)
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    theirs.save_model(tmp_path)
    ours = import_sae(tmp_path)  # format detected from the files
    assert ours.cfg.architecture == "topk" and ours.cfg.k == 5
    with torch.no_grad():
        torch.testing.assert_close(ours(X), theirs(X), atol=1e-4, rtol=1e-5)


def _openai_reference(sd: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    """openai/sparse_autoencoder's Autoencoder.forward, written out from its formulas."""
    mu = x.mean(-1, keepdim=True)
    xc = x - mu
    std = xc.std(-1, keepdim=True)
    xn = xc / (std + 1e-5)
    pre = (xn - sd["pre_bias"]) @ sd["encoder.weight"].T + sd["latent_bias"]
    top = torch.topk(pre, k=sd["activation_state_dict"]["k"], dim=-1)
    lat = torch.zeros_like(pre).scatter_(-1, top.indices, top.values.relu())
    rec: torch.Tensor = lat @ sd["decoder.weight"].T + sd["pre_bias"]
    return rec * std + mu


def test_import_openai_state_dict(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(5)
    sd: dict[str, Any] = {
        "pre_bias": torch.randn(16, generator=g),
        "latent_bias": torch.randn(64, generator=g) * 0.1,
        "encoder.weight": torch.randn(64, 16, generator=g),
        "decoder.weight": torch.randn(16, 64, generator=g),
        "stats_last_nonzero": torch.zeros(64, dtype=torch.long),
        "activation": "TopK",
        "activation_state_dict": {"k": 6, "postact_fn": "ReLU"},
    }
    torch.save(sd, tmp_path / "8.pt")
    ours = import_openai(tmp_path / "8.pt", hook_name="blocks.8.hook_resid_post")
    assert ours.cfg.k == 6 and ours.cfg.normalize
    torch.testing.assert_close(ours(X), _openai_reference(sd, X), atol=1e-4, rtol=1e-5)
    torch.save({"encoder.weight": torch.zeros(2, 2)}, tmp_path / "bad.pt")
    with pytest.raises(ArtifactError, match="missing pre_bias"):
        import_openai(tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a pickle at all")
    with pytest.raises(ArtifactError, match="not a readable OpenAI SAE"):
        import_openai(tmp_path / "junk.pt")


def test_sparsify_layout(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(7)
    enc, bias = torch.randn(64, 16, generator=g), torch.randn(64, generator=g) * 0.1
    w_dec, b_dec = torch.randn(64, 16, generator=g), torch.randn(16, generator=g)
    save_file(
        {"encoder.weight": enc, "encoder.bias": bias, "W_dec": w_dec, "b_dec": b_dec},
        str(tmp_path / "sae.safetensors"),
    )
    cfg = {
        "activation": "topk",
        "expansion_factor": 4,
        "normalize_decoder": True,
        "num_latents": 64,
        "k": 5,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": False,
        "d_in": 16,
    }
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    ours = import_sparsify(tmp_path)
    # sparsify: relu(encoder(x - b_dec)), top-k, decode rows of W_dec, + b_dec
    pre = torch.relu((X - b_dec) @ enc.T + bias)
    v, i = pre.topk(5, dim=-1)
    want = (torch.zeros_like(pre).scatter_(-1, i, v)) @ w_dec + b_dec
    torch.testing.assert_close(ours(X), want, atol=1e-4, rtol=1e-5)
    export_sparsify(ours, tmp_path / "again")
    torch.testing.assert_close(import_sparsify(tmp_path / "again")(X), want, atol=1e-4, rtol=1e-5)


def test_corrupt_and_foreign_files(tmp_path: Path) -> None:
    export_saelens(_sae("topk"), tmp_path / "sl")
    (tmp_path / "sl" / "cfg.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        import_saelens(tmp_path / "sl")
    export_saelens(_sae("topk"), tmp_path / "sl2")
    f = tmp_path / "sl2" / "sae_weights.safetensors"
    f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(ArtifactError, match="cannot read"):
        import_saelens(tmp_path / "sl2")
    export_saelens(_sae("topk"), tmp_path / "sl3")
    c = json.loads((tmp_path / "sl3" / "cfg.json").read_text())
    c["d_in"] = 8
    (tmp_path / "sl3" / "cfg.json").write_text(json.dumps(c))
    with pytest.raises(ArtifactError, match=r"W_enc has shape \(16, 64\) but d_in 8"):
        import_saelens(tmp_path / "sl3")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="neither SAELens nor sparsify"):
        import_sae(tmp_path / "empty")
