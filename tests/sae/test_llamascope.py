"""Llama Scope's layout (hyperparams.json + checkpoints/final.safetensors), written by the test
with random weights, loads through the one adapter: latents and outputs equal a numpy reference
of lm_saes' forward (dataset-norm scaling in and out, the decoder norm in the JumpReLU gate,
TopK), an SAE site loads as an SAE, the TC site as a transcoder that splices exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from lenscope.errors import ArtifactError
from lenscope.sae import load_sae, load_transcoders
from lenscope.sae.dictionary import Dictionary, check_compatible, splice
from lenscope.sae.io import load_dictionaries
from lenscope.sae.llamascope import load_llamascope
from lenscope.sae.transcoder import Transcoder
from tests.sae.helpers import tiny_model

D, F = 32, 48


def write_llamascope(
    d: Path, hook_in: str, hook_out: str, act: str = "jumprelu", seed: int = 0, **hp: Any
) -> dict[str, Any]:
    """A Llama Scope folder with random weights; returns the numpy arrays and hyperparams."""
    rng = np.random.default_rng(seed)
    arrays = {
        "encoder.weight": rng.normal(size=(F, D)) / math.sqrt(D),
        "encoder.bias": rng.normal(size=F) * 0.1,
        "decoder.weight": rng.normal(size=(D, F)) * rng.uniform(0.3, 2.0, size=F) / math.sqrt(F),
        "decoder.bias": rng.normal(size=D) * 0.1,
    }
    params = {
        "d_model": D, "d_sae": F, "hook_point_in": hook_in, "hook_point_out": hook_out,
        "act_fn": act, "jump_relu_threshold": 0.15, "top_k": 7, "norm_activation": "dataset-wise",
        "dataset_average_activation_norm": {"in": 3.5, "out": 0.8},
        "sparsity_include_decoder_norm": True, "use_decoder_bias": True,
        "apply_decoder_bias_to_pre_encoder": False, "expansion_factor": F // D,
    } | hp  # fmt: skip
    (d / "checkpoints").mkdir(parents=True)
    tensors = {k: torch.tensor(v, dtype=torch.float32) for k, v in arrays.items()}
    save_file(tensors, str(d / "checkpoints" / "final.safetensors"))
    (d / "hyperparams.json").write_text(json.dumps(params), "utf-8")
    return {k: t.double().numpy() for k, t in tensors.items()} | {"hp": params}


def reference(w: dict[str, Any], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """lm_saes' forward in numpy: (latents, output in the model's units)."""
    hp = w["hp"]
    norms = hp["dataset_average_activation_norm"]
    s_in, s_out = math.sqrt(hp["d_model"]) / norms["in"], math.sqrt(hp["d_model"]) / norms["out"]
    xs = x * s_in
    if hp["apply_decoder_bias_to_pre_encoder"]:
        xs = xs - w["decoder.bias"]
    pre = xs @ w["encoder.weight"].T + w["encoder.bias"]
    score = pre * np.linalg.norm(w["decoder.weight"], axis=0)
    if hp["act_fn"] == "jumprelu":
        mask = score > hp["jump_relu_threshold"]
    else:
        s = np.clip(score, 0, None)
        kth = np.sort(s, axis=-1)[..., -hp["top_k"]][..., None]
        mask = (s >= kth) & (s > 0)
    f = pre * mask
    return f, (f @ w["decoder.weight"].T + w["decoder.bias"]) / s_out


def test_a_llamascope_sae_matches_the_reference(tmp_path: Path) -> None:
    hook = "blocks.1.hook_resid_post"
    w = write_llamascope(tmp_path / "L1R", hook, hook, apply_decoder_bias_to_pre_encoder=True)
    x = np.random.default_rng(1).normal(size=(20, D)) * 0.6
    f_ref, out_ref = reference(w, x)
    assert 0 < (f_ref > 0).sum() < f_ref.size  # the gate matters
    sae = load_sae(tmp_path / "L1R")  # an SAE site loads as an SAE, by path
    dic = Dictionary.of(sae)
    xt = torch.tensor(x, dtype=torch.float32)
    np.testing.assert_allclose(dic.latents(xt).numpy(), f_ref, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        got = dic.decode(dic.latents(xt), xt).numpy()
    np.testing.assert_allclose(got, out_ref, rtol=1e-4, atol=1e-5)
    assert sae.cfg.hook_name == hook and sae.cfg.architecture == "jumprelu"


@pytest.mark.parametrize("act", ["jumprelu", "topk"])
def test_a_llamascope_transcoder_matches_the_reference_and_splices(
    tmp_path: Path, act: str
) -> None:
    hin, hout = "blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out"
    w = write_llamascope(tmp_path / "L0TC", hin, hout, act=act)
    x = np.random.default_rng(2).normal(size=(20, D))
    f_ref, out_ref = reference(w, x)
    (t,) = load_transcoders(tmp_path / "L0TC")
    assert isinstance(t, Transcoder) and t.cfg.hook_in == hin and t.cfg.hook_out == hout
    xt = torch.tensor(x, dtype=torch.float32)
    with torch.no_grad():
        f = t.encode(xt)
        if act == "topk":  # latents are ranked by score: f * |W_dec[:, j]|
            f_ref = f_ref * np.linalg.norm(w["decoder.weight"], axis=0)
        np.testing.assert_allclose(f.numpy(), f_ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(t(xt).numpy(), out_ref, rtol=1e-4, atol=1e-5)
    model = tiny_model()
    (dic,) = load_dictionaries(tmp_path / "L0TC", model)
    check_compatible(model, dic)
    tokens = torch.arange(12)[None] % model.cfg.d_vocab
    with torch.no_grad():
        clean = model(tokens)
        kept = model.run_with_hooks(tokens, fwd_hooks=splice(dic, keep_error=True, sink={}))
        replaced = model.run_with_hooks(tokens, fwd_hooks=splice(dic))
    torch.testing.assert_close(kept, clean)
    assert not torch.allclose(replaced, clean)


def test_bad_llamascope_folders_are_one_line_errors(tmp_path: Path) -> None:
    hook = "blocks.0.hook_resid_post"
    write_llamascope(tmp_path / "a", hook, hook, act="gelu")
    with pytest.raises(ArtifactError, match="act_fn 'gelu' is not supported"):
        load_llamascope(tmp_path / "a")
    write_llamascope(tmp_path / "b", hook, hook, dataset_average_activation_norm={})
    with pytest.raises(ArtifactError, match="dataset_average_activation_norm"):
        load_llamascope(tmp_path / "b")
    write_llamascope(tmp_path / "c", hook, hook)
    (tmp_path / "c" / "checkpoints" / "final.safetensors").unlink()
    with pytest.raises(ArtifactError, match=r"no checkpoints/final\.safetensors"):
        load_sae(tmp_path / "c")


def test_published_folders_list_and_load_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lenscope.sae import list_saes
    from lenscope.sae.transcoder_formats import export_saelens_transcoder
    from tests.sae.helpers import random_transcoder

    home = tmp_path / "home"
    monkeypatch.setenv("LENSCOPE_HOME", str(home))
    hin, hout = "blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out"
    write_llamascope(home / "saes" / "ls-L1TC", hin, hout)
    export_saelens_transcoder(random_transcoder(0, dtype=torch.float32), home / "saes" / "tc0")
    listed = {e.name: e.summary for e in list_saes() if e.source == "trained"}
    assert listed == {
        "ls-L1TC": "transcoders (Llama Scope layout)",
        "tc0": "transcoders (SAELens layout)",
    }
    model = tiny_model()
    (a,) = load_dictionaries("ls-L1TC", model)
    (b,) = load_dictionaries("tc0", model)
    assert (a.node_key, b.node_key) == ("blocks.1.transcoder", "blocks.0.transcoder")
