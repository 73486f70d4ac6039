"""Transcoders in circuit-tracer's and SAELens' layouts load into the one dictionary adapter and
splice as their MLP's replacement: with the error kept the logits are exactly the model's, without
it each MLP output is the reconstruction computed by hand (numpy, float64) from the MLP's input."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor

from lenscope.errors import ArtifactError, InputError
from lenscope.sae import Dictionary, check_compatible, load_transcoders, splice
from lenscope.sae.formats import import_sae, import_saelens
from tests.sae.helpers import tiny_model

D, N = 32, 48  # tiny_model's d_model, transcoder width
TOKENS = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(0))


def _params(seed: int, jump: bool) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    p = {
        "W_enc": (r.standard_normal((D, N)) / np.sqrt(D)).astype(np.float32),
        "W_dec": (r.standard_normal((N, D)) / np.sqrt(N)).astype(np.float32),
        "b_enc": (r.standard_normal(N) * 0.1).astype(np.float32),
        "b_dec": (r.standard_normal(D) * 0.1).astype(np.float32),
    }
    if jump:
        p["threshold"] = np.abs(r.standard_normal(N) * 0.3).astype(np.float32)
    return p


def _numpy_transcoder(p: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    P = {k: v.astype(np.float64) for k, v in p.items()}
    pre = x.astype(np.float64) @ P["W_enc"] + P["b_enc"]
    f = np.maximum(pre, 0) * (pre > P.get("threshold", 0.0))
    return f, f @ P["W_dec"] + P["b_dec"]


def _model(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    m = tiny_model(d_model=D, n_layers=2)
    with torch.no_grad():  # non-trivial norms, so that folding them matters
        for b in m.blocks:
            b.ln2.w.uniform_(0.5, 1.5)
            b.ln2.b.normal_(0, 0.2)
    return m


def _circuit_tracer(root: Path, in_hook: str = "hook_resid_mid") -> dict[int, dict[str, Any]]:
    """Layer 0: a ReLU transcoder in safetensors (stored transposed); layer 1: Gemma Scope npz."""
    root.mkdir(parents=True)
    p0, p1 = _params(1, jump=False), _params(2, jump=True)
    stored = {
        "W_enc": torch.from_numpy(p0["W_enc"].T.copy()),
        "W_dec": torch.from_numpy(p0["W_dec"].T.copy()),
        "b_enc": torch.from_numpy(p0["b_enc"]),
        "b_dec": torch.from_numpy(p0["b_dec"]),
    }
    save_file(stored, str(root / "layer_0.safetensors"))
    (root / "l1").mkdir()
    np.savez(root / "l1" / "params.npz", **p1)
    (root / "config.yaml").write_text(
        "model_name: tiny\n"
        "model_kind: transcoder_set\n"
        f"feature_input_hook: {in_hook}\n"
        "feature_output_hook: hook_mlp_out\n"
        "transcoders:\n"
        "  - {id: t1, layer: 1, filepath: l1/params.npz}\n"
        "  - {id: t0, layer: 0, filepath: layer_0.safetensors}\n"
    )
    return {0: p0, 1: p1}


def _capture(
    model: Any, hooks: list[str], extra: Sequence[Any] = ()
) -> tuple[Tensor, dict[str, Tensor]]:
    got: dict[str, Tensor] = {}

    def keep(name: str) -> Any:
        def fn(x: Tensor, _hook: Any) -> None:
            got[name] = x.detach().clone()

        return fn

    with torch.no_grad():
        logits = model.run_with_hooks(TOKENS, fwd_hooks=[*extra, *[(h, keep(h)) for h in hooks]])
    return logits, got


def test_circuit_tracer_transcoder_set_splices_as_the_mlp(tmp_path: Path) -> None:
    params = _circuit_tracer(tmp_path / "ct")
    model = _model()
    ts = load_transcoders(tmp_path / "ct")
    assert [t.cfg.hook_in for t in ts] == ["blocks.0.hook_resid_mid", "blocks.1.hook_resid_mid"]
    assert [t.cfg.activation for t in ts] == ["relu", "jumprelu"]
    clean, acts = _capture(model, ["blocks.0.hook_resid_mid", "blocks.1.hook_resid_mid"])
    for layer, t in enumerate(ts):
        dic = Dictionary.of(t)
        check_compatible(model, dic)
        assert dic.hooks_out == (f"blocks.{layer}.hook_mlp_out",) and not dic.is_sae
        x = acts[f"blocks.{layer}.hook_resid_mid"]
        f, recon = _numpy_transcoder(params[layer], x.double().numpy())
        assert 0 < (f > 0).sum() < f.size
        np.testing.assert_allclose(dic.latents(x).double().numpy(), f, atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(dic.decode(dic.latents(x), x).numpy(), recon, atol=1e-5)
    # the error kept: an exact identity
    specs = [s for t in ts for s in splice(t, keep_error=True)]
    with torch.no_grad():
        assert torch.equal(model.run_with_hooks(TOKENS, fwd_hooks=specs), clean)
    # without it, layer 0's MLP output is its reconstruction from the (clean) resid_mid
    _, got = _capture(model, ["blocks.0.hook_mlp_out"], extra=splice(ts[0]))
    _, want = _numpy_transcoder(params[0], acts["blocks.0.hook_resid_mid"].double().numpy())
    np.testing.assert_allclose(got["blocks.0.hook_mlp_out"].double().numpy(), want, atol=1e-5)


def test_circuit_tracer_mlp_hook_in_folds_the_norm(tmp_path: Path) -> None:
    params = _circuit_tracer(tmp_path / "ct", in_hook="mlp.hook_in")
    model = _model()
    with pytest.raises(InputError, match="need the model"):
        load_transcoders(tmp_path / "ct")
    ts = load_transcoders(tmp_path / "ct", model=model)
    assert ts[1].cfg.hook_in == "blocks.1.ln2.hook_normalized"
    # reading hook_normalized takes the norm's unfused path: the reference run reads it too
    hooks = [
        "blocks.1.hook_resid_mid",
        "blocks.0.ln2.hook_normalized",
        "blocks.1.ln2.hook_normalized",
    ]
    clean, acts = _capture(model, hooks)
    with torch.no_grad():  # the MLP's input, computed by the norm module itself
        mlp_in = model.blocks[1].ln2(acts["blocks.1.hook_resid_mid"])
    f, _ = _numpy_transcoder(params[1], mlp_in.double().numpy())
    got = Dictionary.of(ts[1]).latents(acts["blocks.1.ln2.hook_normalized"])
    np.testing.assert_allclose(got.double().numpy(), f, atol=1e-5, rtol=1e-4)
    specs = [s for t in ts for s in splice(t, keep_error=True)]
    with torch.no_grad():
        assert torch.equal(model.run_with_hooks(TOKENS, fwd_hooks=specs), clean)


def _saelens_transcoder(dest: Path, p: dict[str, np.ndarray]) -> None:
    dest.mkdir(parents=True)
    save_file({k: torch.from_numpy(v) for k, v in p.items()}, str(dest / "sae_weights.safetensors"))
    cfg = {
        "architecture": "jumprelu_transcoder",
        "d_in": D,
        "d_sae": N,
        "d_out": D,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "hook_name_out": "blocks.1.hook_mlp_out",
        "metadata": {"hook_name": "blocks.1.hook_resid_mid", "model_name": "tiny"},
    }
    (dest / "cfg.json").write_text(json.dumps(cfg))


def test_saelens_transcoder_matches_saelens_and_splices(tmp_path: Path) -> None:
    from sae_lens import SAE

    p = _params(7, jump=True)
    _saelens_transcoder(tmp_path / "tc", p)
    (t,) = load_transcoders(tmp_path / "tc")
    assert (t.cfg.hook_in, t.cfg.hook_out) == ("blocks.1.hook_resid_mid", "blocks.1.hook_mlp_out")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SAE.load_from_disk(tmp_path / "tc")
    x = torch.randn(20, D, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(t.encode(x), theirs.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(t(x), theirs(x), atol=1e-5, rtol=1e-5)
    model = _model()
    clean, acts = _capture(model, ["blocks.1.hook_resid_mid"])
    with torch.no_grad():
        assert torch.equal(
            model.run_with_hooks(TOKENS, fwd_hooks=splice(t, keep_error=True)), clean
        )
    _, got = _capture(model, ["blocks.1.hook_mlp_out"], extra=splice(t))
    _, want = _numpy_transcoder(p, acts["blocks.1.hook_resid_mid"].double().numpy())
    np.testing.assert_allclose(got["blocks.1.hook_mlp_out"].double().numpy(), want, atol=1e-5)
    with pytest.raises(ArtifactError, match="holds SAELens transcoders, not an SAE"):
        import_sae(tmp_path / "tc")
    with pytest.raises(ArtifactError, match="jumprelu_transcoder, not an SAE; load it with"):
        import_saelens(tmp_path / "tc")


def test_transcoder_bad_input(tmp_path: Path) -> None:
    _circuit_tracer(tmp_path / "ct")
    with pytest.raises(ArtifactError, match="transcoders, not an SAE"):
        import_sae(tmp_path / "ct")
    wide = tiny_model(d_model=16, n_layers=2)
    t0 = load_transcoders(tmp_path / "ct")[0]
    with pytest.raises(InputError, match=r"reads d_in = 32 but tiny's blocks\.0\.hook_resid_mid"):
        check_compatible(wide, Dictionary.of(t0))
    (tmp_path / "ct" / "config.yaml").write_text(
        (tmp_path / "ct" / "config.yaml")
        .read_text()
        .replace("transcoder_set", "cross_layer_transcoder")
    )
    with pytest.raises(ArtifactError, match="a cross-layer transcoder; load its folder"):
        load_transcoders(tmp_path / "ct")
    cfg = tmp_path / "ct2" / "config.yaml"
    _circuit_tracer(tmp_path / "ct2", in_hook="hook_attn_out")
    with pytest.raises(ArtifactError, match=r"inputs: hook_resid_mid, hook_mlp_in, mlp\.hook_in"):
        load_transcoders(cfg)
    cfg.write_text(
        cfg.read_text()
        .replace("hook_attn_out", "hook_resid_mid")
        .replace("layer_0.safetensors", "hf://org/repo/layer_0.safetensors")
    )
    with pytest.raises(ArtifactError, match="is not on disk; download it"):
        load_transcoders(cfg)
    _circuit_tracer(tmp_path / "ct3")
    np.savez(tmp_path / "ct3" / "l1" / "params.npz", W_enc=np.zeros((D, N), np.float32))
    with pytest.raises(ArtifactError, match=r"missing tensor\(s\) b_enc, W_dec, b_dec, threshold"):
        load_transcoders(tmp_path / "ct3")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(
        ArtifactError, match=r"no known transcoder layout: SAELens .*circuit-tracer"
    ):
        load_transcoders(tmp_path / "nothing")


def test_saelens_reads_our_transcoder_export(tmp_path: Path) -> None:
    from sae_lens import SAE

    from lenscope.sae.transcoder_formats import export_saelens_transcoder

    _circuit_tracer(tmp_path / "ct")
    x = torch.randn(20, D, generator=torch.Generator().manual_seed(4))
    for t in load_transcoders(tmp_path / "ct"):  # a ReLU and a JumpReLU transcoder
        out = export_saelens_transcoder(t, tmp_path / f"sl{t.cfg.hook_in}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = SAE.load_from_disk(out)
        (back,) = load_transcoders(out, dtype=torch.float64)
        assert back.W_enc.dtype == torch.float64
        back = back.float()
        assert (back.cfg.hook_in, back.cfg.hook_out) == (t.cfg.hook_in, t.cfg.hook_out)
        with torch.no_grad():
            torch.testing.assert_close(theirs.encode(x), t.encode(x), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(theirs(x), t(x), atol=1e-5, rtol=1e-5)
            assert torch.equal(back(x), t(x))


def _sparsify_transcoder(dest: Path, k: int, **extra: Any) -> dict[str, np.ndarray]:
    p = _params(9, jump=False)
    dest.mkdir(parents=True)
    sd = {
        "encoder.weight": torch.from_numpy(p["W_enc"].T.copy()),
        "encoder.bias": torch.from_numpy(p["b_enc"]),
        "W_dec": torch.from_numpy(p["W_dec"]),
        "b_dec": torch.from_numpy(p["b_dec"]),
    }
    save_file(sd, str(dest / "sae.safetensors"))
    cfg = {"d_in": D, "num_latents": N, "k": k, "transcode": True, **extra}
    (dest / "cfg.json").write_text(json.dumps(cfg))
    return p


def test_sparsify_transcoder_reads_the_mlp_input(tmp_path: Path) -> None:
    k = 5
    folder = tmp_path / "run" / "layers.1.mlp"
    p = _sparsify_transcoder(folder, k)
    model = _model()
    with pytest.raises(InputError, match="need the model"):
        load_transcoders(folder)
    with pytest.raises(ArtifactError, match="sparsify transcoders, not an SAE"):
        import_sae(folder)
    (t,) = load_transcoders(folder, model=model)
    assert (t.cfg.hook_in, t.cfg.hook_out) == (
        "blocks.1.ln2.hook_normalized",
        "blocks.1.hook_mlp_out",
    )
    hooks = ["blocks.1.hook_resid_mid", "blocks.1.ln2.hook_normalized"]
    clean, acts = _capture(model, hooks)
    with torch.no_grad():  # sparsify: relu(encoder(mlp input)), the top k per token; no b_dec first
        mlp_in = model.blocks[1].ln2(acts["blocks.1.hook_resid_mid"]).double().numpy()
    pre = np.maximum(mlp_in @ p["W_enc"].astype(np.float64) + p["b_enc"], 0)
    want = np.zeros_like(pre)
    for idx in np.ndindex(pre.shape[:-1]):
        top = np.argsort(-pre[idx])[:k]
        want[idx][top] = pre[idx][top]
    got = Dictionary.of(t).latents(acts["blocks.1.ln2.hook_normalized"])
    np.testing.assert_allclose(got.double().numpy(), want, atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        assert torch.equal(
            model.run_with_hooks(TOKENS, fwd_hooks=splice(t, keep_error=True)), clean
        )
    _, out = _capture(model, ["blocks.1.hook_mlp_out"], extra=splice(t))
    recon = want @ p["W_dec"].astype(np.float64) + p["b_dec"]
    np.testing.assert_allclose(out["blocks.1.hook_mlp_out"].double().numpy(), recon, atol=1e-5)
    _sparsify_transcoder(tmp_path / "skip" / "layers.0.mlp", k, skip_connection=True)
    with pytest.raises(ArtifactError, match="skip connection"):
        load_transcoders(tmp_path / "skip" / "layers.0.mlp", model=model)


def test_cross_layer_transcoder_splices_exactly_and_reconstructs_every_mlp(tmp_path: Path) -> None:
    from lenscope.sae.clt import load_cross_layer_transcoder

    r = np.random.default_rng(11)
    n_layers = 2
    W_enc = [r.standard_normal((N, D)).astype(np.float32) / np.sqrt(D) for _ in range(n_layers)]
    b_enc = [r.standard_normal(N).astype(np.float32) * 0.1 for _ in range(n_layers)]
    b_dec = [r.standard_normal(D).astype(np.float32) * 0.1 for _ in range(n_layers)]
    thr = [np.abs(r.standard_normal(N)).astype(np.float32) * 0.2 for _ in range(n_layers)]
    W_dec = [
        r.standard_normal((N, n_layers - i, D)).astype(np.float32) / np.sqrt(N)
        for i in range(n_layers)
    ]
    (tmp_path / "clt").mkdir()
    for i in range(n_layers):
        enc = {f"W_enc_{i}": W_enc[i], f"b_enc_{i}": b_enc[i], f"b_dec_{i}": b_dec[i]}
        enc[f"threshold_{i}"] = thr[i]
        save_file(
            {k: torch.from_numpy(v) for k, v in enc.items()},
            str(tmp_path / "clt" / f"W_enc_{i}.safetensors"),
        )
        save_file(
            {f"W_dec_{i}": torch.from_numpy(W_dec[i])},
            str(tmp_path / "clt" / f"W_dec_{i}.safetensors"),
        )
    clt = load_cross_layer_transcoder(tmp_path / "clt")
    dics = clt.dictionaries()
    model = _model()
    for d in dics:
        check_compatible(model, d)
    assert dics[0].hooks_out == ("blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out")
    hooks = [f"blocks.{i}.hook_resid_mid" for i in range(n_layers)]
    clean, acts = _capture(model, hooks)
    specs = [s for d in dics for s in splice(d, keep_error=True)]
    with torch.no_grad():
        assert torch.equal(model.run_with_hooks(TOKENS, fwd_hooks=specs), clean)
    # numpy: f_i = JumpReLU(x_i W_enc_i^T + b_enc_i); out_j = sum_{i<=j} f_i W_dec_i[:, j-i] + b_dec_j
    xs = [acts[h].double().numpy() for h in hooks]
    fs = []
    for i in range(n_layers):
        pre = xs[i] @ W_enc[i].T.astype(np.float64) + b_enc[i]
        fs.append(pre * (pre > thr[i]) * (pre > 0))
    assert all(0 < (f > 0).sum() < f.size for f in fs)
    got = clt.reconstruct([acts[h] for h in hooks])
    for j in range(n_layers):
        want = sum(fs[i] @ W_dec[i][:, j - i].astype(np.float64) for i in range(j + 1)) + b_dec[j]
        np.testing.assert_allclose(got[j].double().numpy(), want, atol=1e-5)
    (tmp_path / "clt" / "W_dec_1.safetensors").unlink()
    with pytest.raises(ArtifactError, match="cannot read"):
        load_cross_layer_transcoder(tmp_path / "clt")
