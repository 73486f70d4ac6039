"""Transcoder sets: a skip / BatchTopK transcoder as a `Dictionary` (splice with the error kept
is an exact identity, without it the replacement includes the skip), the artifact round trip,
lookup by name and by model, clear refusals, and the exports (circuit-tracer 0.5's layout and
SAELens', read back by lenscope and by SAELens itself) computing the same outputs."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import Tensor

from lenscope.errors import InputError
from lenscope.sae import load_transcoders
from lenscope.sae.dictionary import splice
from lenscope.sae.transcoder_export import export_transcoder_set
from lenscope.sae.transcoder_set import (
    list_transcoder_sets,
    load_transcoder_set,
    save_transcoder_set,
    transcoder_sets_for_model,
)
from tests.sae.helpers import tiny_model
from tests.sae.tc_helpers import random_set


def _with_ln_affine(m: Any) -> Any:
    """Give every ln2 a weight and bias far from (1, 0), so the export's unfolding matters."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for blk in m.blocks:
            blk.ln2.w.copy_(0.5 + torch.rand(blk.ln2.w.shape, generator=g))
            blk.ln2.b.copy_(0.3 * torch.randn(blk.ln2.b.shape, generator=g))
    return m


def _mlp_inputs(m: Any, toks: Tensor) -> dict[str, Tensor]:
    _, cache = m.run_with_cache(toks)
    return {k: cache[k] for k in cache}


def _outputs(ts: Any, acts: dict[str, Tensor]) -> list[Tensor]:
    """Each MLP output the set predicts from the model's own MLP inputs."""
    dics = ts.dictionaries()
    outs = []
    for j in ts.layers:
        h = f"blocks.{j}.hook_mlp_out"
        total = 0 * acts[h]
        for d in dics:
            if h in d.hooks_out:
                x = acts[d.hook_in]
                total = total + d.decode(d.latents(x), x, h)
        outs.append(total)
    return outs


def test_skip_batchtopk_transcoder_as_a_dictionary() -> None:
    m = tiny_model().eval()
    ts = random_set(m, activation="batchtopk", k=4, skip=True)
    t = ts.transcoders[1]
    toks = torch.randint(0, 64, (2, 12))
    dic = t.as_dictionary()
    with torch.no_grad():
        noop = [(h, lambda a, _h: None) for h in (dic.hook_in, *dic.hooks_out)]
        clean = m.run_with_hooks(toks, fwd_hooks=noop)  # the same (hooked) kernels
        kept = m.run_with_hooks(toks, fwd_hooks=splice(dic, keep_error=True, sink={}))
        assert torch.equal(kept, clean)  # the error (skip included) restores the MLP exactly
        x = _mlp_inputs(m, toks)["blocks.1.ln2.hook_normalized"]
        f = torch.where(x @ t.W_enc + t.b_enc > t.threshold, x @ t.W_enc + t.b_enc, 0.0).relu()
        assert torch.equal(dic.latents(x), f)
        want = f @ t.W_dec + t.b_dec + x @ t.W_skip  # type: ignore[operator]
        torch.testing.assert_close(dic.decode(f, x), want)
        seen: dict[str, Tensor] = {}

        def grab(y: Tensor, _h: Any) -> None:
            seen["y"] = y

        m.run_with_hooks(
            toks, fwd_hooks=[*splice(dic, keep_error=False), ("blocks.1.hook_mlp_out", grab)]
        )
        torch.testing.assert_close(seen["y"], want)
        # an edit moves the output by exactly the edited latents' writes
        edit = lambda z: z * 0  # noqa: E731
        m.run_with_hooks(
            toks,
            fwd_hooks=[*splice(dic, keep_error=True, edit=edit), ("blocks.1.hook_mlp_out", grab)],
        )
        y0 = _mlp_inputs(m, toks)["blocks.1.hook_mlp_out"]
        torch.testing.assert_close(seen["y"], y0 - f @ t.W_dec)


@pytest.mark.parametrize("cross", [False, True])
def test_artifact_round_trip_and_lookup(
    cross: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LENSCOPE_HOME", str(tmp_path / "home"))
    m = tiny_model().eval()
    ts = random_set(
        m,
        activation="jumprelu" if cross else "batchtopk",
        k=None if cross else 4,
        skip=not cross,
        cross_layer=cross,
        name="myset",
    )
    ts.metrics = {"fvu": 0.5}
    save_transcoder_set(ts, tmp_path / "home" / "transcoders" / "myset")
    back = load_transcoder_set("myset", model=m)
    assert back.name == "myset" and back.layers == [0, 1] and back.cross_layer == cross
    assert back.metrics == {"fvu": 0.5}
    toks = torch.randint(0, 64, (2, 10))
    acts = _mlp_inputs(m, toks)
    for a, b in zip(_outputs(ts, acts), _outputs(back, acts), strict=True):
        assert torch.equal(a, b)
    if not cross:
        for a, b in zip(ts.transcoders, back.transcoders, strict=True):
            for n, p in a.state_dict().items():
                assert torch.equal(p, b.state_dict()[n]), n
    assert transcoder_sets_for_model(m) == [tmp_path / "home" / "transcoders" / "myset"]
    assert [e.name for e in list_transcoder_sets() if e.source == "trained"] == ["myset"]
    assert transcoder_sets_for_model(tiny_model(d_model=48)) == []
    with pytest.raises(InputError, match="48"):
        load_transcoder_set("myset", model=tiny_model(d_model=48))
    with pytest.raises(InputError, match="no transcoder set named 'nope'"):
        load_transcoder_set("nope")
    other = tiny_model().eval()
    with torch.no_grad():
        other.blocks[0].ln2.w.mul_(2)  # same shapes, another model
    with pytest.raises(InputError, match="fingerprint"):
        load_transcoder_set("myset", model=other)
    load_transcoder_set("myset", model=other, strict=False)


@pytest.mark.parametrize(
    ("activation", "k", "skip", "cross"),
    [("batchtopk", 4, True, False), ("relu", None, False, False), ("jumprelu", None, False, True)],
)
def test_circuit_tracer_export_loads_back_unchanged(
    activation: str, k: int | None, skip: bool, cross: bool, tmp_path: Path
) -> None:
    m = _with_ln_affine(tiny_model()).eval()
    ts = random_set(m, activation=activation, k=k, skip=skip, cross_layer=cross)
    out = export_transcoder_set(ts, tmp_path / "ct", "circuit-tracer", model=m)
    conf = yaml.safe_load((out / "config.yaml").read_text())
    assert conf["feature_input_hook"] == "mlp.hook_in"
    assert conf["feature_output_hook"] == "mlp.hook_out"
    if cross:
        assert conf["model_kind"] == "cross_layer_transcoder"
        assert (out / "W_dec_1.safetensors").is_file()
    else:
        from safetensors.torch import load_file

        assert conf["model_kind"] == "transcoder_set"
        assert conf["transcoders"] == ["layer_0.safetensors", "layer_1.safetensors"]
        sd = load_file(str(out / "layer_0.safetensors"))  # circuit-tracer 0.5's names, shapes
        assert sd["W_enc"].shape == (48, 32) and sd["W_dec"].shape == (48, 32)
        assert ("activation_function.threshold" in sd) == (activation != "relu")
        assert ("W_skip" in sd) == skip
    back = load_transcoder_set(out, model=m)
    assert back.cfg.activation == activation and back.cfg.skip == skip
    assert back.cfg.hook_in == "ln2.hook_normalized"
    toks = torch.randint(0, 64, (2, 10))
    acts = _mlp_inputs(m, toks)
    for a, b in zip(_outputs(ts, acts), _outputs(back, acts), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    if not cross:
        for a, b in zip(ts.transcoders, back.transcoders, strict=True):
            names = ["W_enc", "b_enc", "W_dec", "b_dec"] + (["W_skip"] if skip else [])
            names += ["threshold"] if activation != "relu" else []  # ReLU ignores it
            for n in names:
                torch.testing.assert_close(getattr(b, n), getattr(a, n), rtol=1e-5, atol=1e-6)


def test_saelens_export_is_read_by_saelens_and_lenscope(tmp_path: Path) -> None:
    from sae_lens import SAE

    m = tiny_model().eval()
    for act, k, skip in (("batchtopk", 4, True), ("relu", None, False)):
        ts = random_set(m, activation=act, k=k, skip=skip)
        out = export_transcoder_set(ts, tmp_path / act, "saelens")
        x = torch.randn(20, 32, generator=torch.Generator().manual_seed(4))
        for layer, t in zip(ts.layers, ts.transcoders, strict=True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = SAE.load_from_disk(out / f"layer_{layer}")
            (back,) = load_transcoders(out / f"layer_{layer}")
            assert back.cfg.activation == act and (back.W_skip is not None) == skip
            with torch.no_grad():
                torch.testing.assert_close(theirs.encode(x), t.encode(x), atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(theirs(x), t(x), atol=1e-5, rtol=1e-5)
                assert torch.equal(back(x), t(x))
        whole = load_transcoder_set(out / "layer_0", model=m)
        assert whole.layers == [0]


def test_exports_refuse_what_they_cannot_hold(tmp_path: Path) -> None:
    m = tiny_model().eval()
    topk = random_set(m, activation="topk", k=4)
    with pytest.raises(InputError, match="no TopK transcoder"):
        export_transcoder_set(topk, tmp_path / "a", "saelens")
    clt = random_set(m, activation="relu", cross_layer=True)
    with pytest.raises(InputError, match="no cross-layer"):
        export_transcoder_set(clt, tmp_path / "b", "saelens")
    with pytest.raises(InputError, match="needs the model"):
        export_transcoder_set(random_set(m), tmp_path / "c", "circuit-tracer")
    with pytest.raises(InputError, match="unknown export format"):
        export_transcoder_set(random_set(m), tmp_path / "d", "onnx")
