"""Published SAE layouts: Gemma Scope's params.npz and SAELens' jumprelu (with and without b_dec
applied to the input) load to SAEs that compute the JumpReLU formula (numpy, float64) and what
SAELens' own forward computes; sparsify and foreign folders load through `load_sae` too."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from lenscope.errors import ArtifactError, InputError
from lenscope.sae import Dictionary, check_compatible, load_sae
from lenscope.sae.formats import export_sparsify, import_sae, import_sparsify
from tests.sae.helpers import tiny_model

D, N = 16, 64
RNG = np.random.default_rng(0)
X = (RNG.standard_normal((40, D)) * 2 + 0.5).astype(np.float32)


def _jumprelu_params(seed: int = 0, d: int = D, n: int = N) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    return {
        "W_enc": (r.standard_normal((d, n)) / np.sqrt(d)).astype(np.float32),
        "W_dec": (r.standard_normal((n, d)) / np.sqrt(n)).astype(np.float32),
        "b_enc": (r.standard_normal(n) * 0.1).astype(np.float32),
        "b_dec": (r.standard_normal(d) * 0.3).astype(np.float32),
        "threshold": np.abs(r.standard_normal(n) * 0.5).astype(np.float32),
    }


def _numpy_jumprelu(
    p: dict[str, np.ndarray], x: np.ndarray, b_dec_to_input: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Latents and reconstruction: f = pre * (pre > threshold) (pre > 0 as the threshold is)."""
    P = {k: v.astype(np.float64) for k, v in p.items()}
    xin = x.astype(np.float64) - (P["b_dec"] if b_dec_to_input else 0.0)
    pre = xin @ P["W_enc"] + P["b_enc"]
    f = pre * (pre > P["threshold"]) * (pre > 0)
    return f, f @ P["W_dec"] + P["b_dec"]


def _gemma_scope_dir(root: Path, p: dict[str, np.ndarray], width: str = "width_64") -> Path:
    d = root / "gemma-scope-2b-pt-res" / "layer_1" / width / "average_l0_5"
    d.mkdir(parents=True)
    np.savez(d / "params.npz", **p)
    return d


def test_gemma_scope_params_npz(tmp_path: Path) -> None:
    p = _jumprelu_params()
    d = _gemma_scope_dir(tmp_path, p)
    sae = import_sae(d)  # auto-detected; hook from the folder convention
    assert sae.cfg.architecture == "jumprelu" and sae.cfg.hook_name == "blocks.1.hook_resid_post"
    f, recon = _numpy_jumprelu(p, X, b_dec_to_input=False)
    x = torch.from_numpy(X)
    assert 0 < (f > 0).sum() < f.size  # some latents fire, some do not
    with torch.no_grad():
        np.testing.assert_allclose(sae.encode(x).double().numpy(), f, atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(sae(x).double().numpy(), recon, atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(sae.reconstruct(x).double().numpy(), recon, atol=1e-5)
    # the file alone, the hook by site (+ the folder's layer) or in full; load_sae imports it
    assert import_sae(d / "params.npz", hook_name="mlp_out").cfg.hook_name == (
        "blocks.1.hook_mlp_out"
    )
    s2 = load_sae(d, hook_name="blocks.0.hook_resid_pre")
    assert s2.cfg.hook_name == "blocks.0.hook_resid_pre"
    torch.testing.assert_close(s2.encode(x), sae.encode(x))


def test_gemma_scope_bad_input(tmp_path: Path) -> None:
    p = _jumprelu_params()
    plain = tmp_path / "plain"
    plain.mkdir()
    np.savez(plain / "params.npz", **p)
    with pytest.raises(InputError, match="do not say which hook"):
        import_sae(plain)
    with pytest.raises(ArtifactError, match="width 16384 but W_enc has 64 latents"):
        import_sae(_gemma_scope_dir(tmp_path / "w", p, "width_16k"))
    p2 = {k: v for k, v in p.items() if k != "threshold"}
    with pytest.raises(ArtifactError, match=r"missing tensor.*threshold"):
        import_sae(_gemma_scope_dir(tmp_path / "m", p2))
    (tmp_path / "bad" / "layer_0").mkdir(parents=True)
    (tmp_path / "bad" / "layer_0" / "params.npz").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match="cannot read"):
        import_sae(tmp_path / "bad" / "layer_0", hook_name="resid_post")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "weights.bin").write_bytes(b"")
    with pytest.raises(ArtifactError, match=r"Gemma Scope.*circuit-tracer"):
        import_sae(tmp_path / "other")
    # a model whose width differs: the one compatibility check says so in one line
    sae = import_sae(_gemma_scope_dir(tmp_path / "ok", p))
    model = tiny_model(d_model=32)
    with pytest.raises(InputError, match=r"reads d_in = 16 but tiny.s blocks\.1\.hook_resid_post"):
        check_compatible(model, Dictionary.of(sae))


def _saelens_jumprelu(dest: Path, p: dict[str, np.ndarray], b_dec_to_input: bool) -> None:
    dest.mkdir(parents=True)
    save_file({k: torch.from_numpy(v) for k, v in p.items()}, str(dest / "sae_weights.safetensors"))
    cfg = {
        "architecture": "jumprelu",
        "d_in": D,
        "d_sae": N,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": b_dec_to_input,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {"hook_name": "blocks.0.hook_resid_post", "model_name": "tiny"},
    }
    (dest / "cfg.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("b_dec_to_input", [False, True])
def test_saelens_jumprelu_matches_saelens_forward(tmp_path: Path, b_dec_to_input: bool) -> None:
    from sae_lens import SAE

    p = _jumprelu_params(seed=3)
    _saelens_jumprelu(tmp_path / "sl", p, b_dec_to_input)
    ours = load_sae(tmp_path / "sl")
    assert ours.cfg.architecture == "jumprelu"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SAE.load_from_disk(tmp_path / "sl")
    x = torch.from_numpy(X)
    f, recon = _numpy_jumprelu(p, X, b_dec_to_input)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode(x), theirs.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(ours.encode(x).double().numpy(), f, atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(ours(x).double().numpy(), recon, atol=1e-5, rtol=1e-5)


def test_sparsify_layout_loads_through_load_sae(tmp_path: Path) -> None:
    r = np.random.default_rng(5)
    sd = {
        "encoder.weight": torch.from_numpy(r.standard_normal((N, D)).astype(np.float32)),
        "encoder.bias": torch.from_numpy(r.standard_normal(N).astype(np.float32) * 0.1),
        "W_dec": torch.from_numpy(r.standard_normal((N, D)).astype(np.float32)),
        "b_dec": torch.from_numpy(r.standard_normal(D).astype(np.float32)),
    }
    (tmp_path / "s").mkdir()
    save_file(sd, str(tmp_path / "s" / "sae.safetensors"))
    (tmp_path / "s" / "cfg.json").write_text(json.dumps({"d_in": D, "num_latents": N, "k": 5}))
    sae = load_sae(tmp_path / "s", hook_name="blocks.0.hook_resid_post")
    # sparsify: pre = relu(enc(x - b_dec)); keep the top k; decode + b_dec (brute force per row)
    S = {k: v.double().numpy() for k, v in sd.items()}
    pre = np.maximum((X - S["b_dec"]) @ S["encoder.weight"].T + S["encoder.bias"], 0)
    want = np.zeros_like(pre)
    for i, row in enumerate(pre):
        top = np.argsort(-row)[:5]
        want[i, top] = row[top]
    x = torch.from_numpy(X)
    with torch.no_grad():
        np.testing.assert_allclose(sae.encode(x).double().numpy(), want, atol=1e-5, rtol=1e-5)
        recon = want @ S["W_dec"] + S["b_dec"]
        np.testing.assert_allclose(sae(x).double().numpy(), recon, atol=1e-4, rtol=1e-5)
    export_sparsify(sae, tmp_path / "again")
    back = import_sparsify(tmp_path / "again")
    assert torch.equal(back.W_enc, sae.W_enc) and torch.equal(back.W_dec, sae.W_dec)


def test_cli_imports_gemma_scope_and_checks_the_model(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lenscope.cli.main import app
    from lenscope.model import save_model

    p = _jumprelu_params(seed=4)
    d = _gemma_scope_dir(tmp_path, p)
    runner = CliRunner()
    r = runner.invoke(app, ["sae", "import", str(d), "--out", str(tmp_path / "ours")])
    assert r.exit_code == 0, r.output
    sae = load_sae(tmp_path / "ours")
    assert sae.cfg.architecture == "jumprelu" and sae.cfg.hook_name == "blocks.1.hook_resid_post"
    x = torch.from_numpy(X)
    with torch.no_grad():
        np.testing.assert_allclose(
            sae.encode(x).double().numpy(), _numpy_jumprelu(p, X, False)[0], atol=1e-5
        )
    save_model(tiny_model(d_model=32), tmp_path / "m")  # a 32-wide model: the SAE reads 16
    args = ["sae", "import", str(d), "--out", str(tmp_path / "x"), "--model", str(tmp_path / "m")]
    r = runner.invoke(app, args)
    assert r.exit_code != 0 and isinstance(r.exception, InputError)
    assert "reads d_in = 16" in str(r.exception) and not (tmp_path / "x").exists()


def test_saelens_reads_our_export_of_a_gemma_scope_sae(tmp_path: Path) -> None:
    from sae_lens import SAE

    from lenscope.sae.formats import export_saelens

    p = _jumprelu_params(seed=6)
    sae = import_sae(_gemma_scope_dir(tmp_path, p))
    export_saelens(sae, tmp_path / "sl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SAE.load_from_disk(tmp_path / "sl")
    f, recon = _numpy_jumprelu(p, X, b_dec_to_input=False)
    x = torch.from_numpy(X)
    with torch.no_grad():
        np.testing.assert_allclose(theirs.encode(x).double().numpy(), f, atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(theirs(x).double().numpy(), recon, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("folder", "hook"),
    [
        ("layers.6", "blocks.6.hook_resid_post"),
        ("gpt_neox.layers.2.mlp", "blocks.2.hook_mlp_out"),
        ("h.3.attn", "blocks.3.hook_attn_out"),
        ("encoder_out", ""),
    ],
)
def test_sparsify_folder_names_its_hook(tmp_path: Path, folder: str, hook: str) -> None:
    from lenscope.sae import SAEConfig, SparseAutoencoder

    cfg = SAEConfig(d_in=D, d_sae=N, architecture="topk", k=4, hook_name="x")
    export_sparsify(SparseAutoencoder(cfg, seed=2), tmp_path / "run" / folder)
    assert load_sae(tmp_path / "run" / folder).cfg.hook_name == hook
    assert import_sae(
        tmp_path / "run" / folder, hook_name="blocks.0.hook_resid_pre"
    ).cfg.hook_name == ("blocks.0.hook_resid_pre")
