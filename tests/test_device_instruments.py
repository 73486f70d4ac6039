"""The instruments on each device (`tests.devices.DEVICES`: the CPU always, CUDA where torch sees a
GPU): the model against `transformers` on that device, the cache, generation with the KV cache,
the debugger, the lens, an SAE's encoding and training steps, a harvest, the circuits and one
server request, each run on the device and equal to the CPU's result within tolerance. The cuda
cases carry the `gpu` mark (`make gpu-check` runs them); without a GPU they are skipped with the
reason. The heavier instruments run on the GPU only (`GPU_ONLY`): their CPU case would compare the
CPU with itself; tests/test_device_stray.py checks them on the CPU instead."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lenscope import Debugger, HookedTransformer, LogitDiff, load_model
from lenscope.jsonable import to_jsonable
from lenscope.sae import SAEConfig, SparseAutoencoder
from tests.devices import DEVICES, GPU_ONLY, close

CPU = torch.device("cpu")
PROMPT = "def f(a, b"
QUESTION = LogitDiff(target=[")"], distractor=[","])


def on(device: str, module: Any) -> Any:
    """A copy of `module` on `device` (the original stays on the CPU for the reference)."""
    return copy.deepcopy(module).to(device)


def assert_json_close(got: Any, want: Any, tol: float = 1e-3, where: str = "") -> None:
    """Two results' JSON equal: numbers within `tol` (relative to their size), the rest exactly."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for k in want:
            assert_json_close(got[k], want[k], tol, f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_json_close(g, w, tol, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert isinstance(got, float | int), where
        if math.isnan(want):
            assert math.isnan(got), where
        else:
            assert abs(got - want) <= tol * max(1.0, abs(want)), (where, got, want)
    else:
        assert got == want, (where, got, want)


def same_result(device: str, fn: Callable[[Any], Any], cpu_arg: Any, tol: float = 1e-3) -> Any:
    """`fn(x)` with x on `device` equals `fn(x)` with x on the CPU (as JSON)."""
    want = to_jsonable(fn(cpu_arg))
    got = fn(on(device, cpu_arg))
    assert_json_close(to_jsonable(got), want, tol)
    return got


@pytest.fixture(scope="module")
def mini() -> HookedTransformer:
    return load_model("mini")


@pytest.mark.parametrize("device", DEVICES)
def test_forward_matches_transformers_on_the_device(device: str, tmp_path: Path) -> None:
    from tests.model.hf_fixtures import make_checkpoint, write_tokenizer

    hf = make_checkpoint("llama", tmp_path).eval().to(device)
    write_tokenizer(tmp_path)
    model = load_model(tmp_path, device=device)
    assert all(p.device.type == device for p in model.parameters())
    toks = torch.randint(0, 97, (2, 20), generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        ref = hf(toks, output_hidden_states=True)
        logits, cache = model.run_with_cache(toks)
    assert logits.device.type == device
    assert close(logits, ref.logits)
    for layer in range(model.cfg.n_layers - 1):
        assert close(cache[f"blocks.{layer}.hook_resid_post"], ref.hidden_states[layer + 1])


@pytest.mark.parametrize("device", DEVICES)
def test_cache_and_greedy_generation_with_the_kv_cache(
    device: str, mini: HookedTransformer
) -> None:
    model = on(device, mini)
    logits, cache = model.run_with_cache("def f(a, b):")
    want_logits, want_cache = mini.run_with_cache("def f(a, b):")
    assert logits.device.type == device and cache["blocks.2.hook_mlp_out"].device.type == device
    assert close(logits, want_logits)
    for name in ("blocks.0.attn.hook_pattern", "blocks.2.hook_resid_post", "ln_final.hook_scale"):
        assert close(cache[name], want_cache[name])
    out = model.generate("def f(a", 8, return_text=False)
    assert isinstance(out, torch.Tensor) and out.device.type == device
    want = mini.generate("def f(a", 8, return_text=False)
    assert isinstance(want, torch.Tensor) and torch.equal(out.cpu(), want)


@pytest.mark.parametrize("device", DEVICES)
def test_the_debugger_on_the_device(device: str, mini: HookedTransformer) -> None:
    from lenscope.interventions import Ablate, InterventionSet

    ivs = InterventionSet(interventions=[Ablate(node="L1.H0")])

    def why(model: HookedTransformer) -> Any:
        dbg = Debugger(model)
        return dbg.why(PROMPT, QUESTION, top_k=5, measure=3), dbg.why(PROMPT, QUESTION, ivs)

    same_result(device, why, mini)


@pytest.mark.parametrize("device", DEVICES)
def test_the_lens_and_tuned_lens_on_the_device(device: str, mini: HookedTransformer) -> None:
    from lenscope.lens import lens_generation, load_tuned_lens, logit_lens

    def lens(model: HookedTransformer) -> Any:
        tuned = load_tuned_lens("mini-tuned", model)
        assert tuned.weight.device == model.device
        return (
            logit_lens(model, "def f(a, b):", watch=[" a"], tuned=tuned),
            lens_generation(model, "for i in range(", 3),
        )

    same_result(device, lens, mini)


@pytest.mark.parametrize("device", GPU_ONLY)  # on the CPU: tests/test_device_stray.py
def test_sae_encoding_and_training_steps_on_the_device(device: str, tmp_path: Path) -> None:
    from lenscope.sae import TrainConfig, train_sae
    from lenscope.sae.distributed import Comm
    from lenscope.sae.train import sae_config_for
    from tests.sae.helpers import tiny_model, tiny_tokens

    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=32, d_sae=48, k=4, hook_name="blocks.0.hook_resid_post"))
    x = torch.randn(20, 32)
    codes = on(device, sae).encode(x.to(device))
    assert codes.device.type == device and close(codes, sae.encode(x))

    model = tiny_model()
    cfg = sae_config_for(model, "blocks.1.hook_resid_post", k=4, d_sae=64)
    runs = iter(["cpu", "device"])

    def train(m: HookedTransformer) -> Any:
        res = train_sae(
            cfg,
            TrainConfig(steps=4, batch_size=64, buffer_tokens=256),
            model=m,
            tokens=tiny_tokens(),
            run_dir=tmp_path / next(runs),
            save=False,
            progress=False,
            log=lambda _s: None,
            comm=Comm(),
        )
        assert res.sae is not None and res.sae.W_dec.device == m.device
        return dict(res.sae.named_parameters()), res.history

    same_result(device, train, model)


@pytest.mark.parametrize("device", GPU_ONLY)  # on the CPU: tests/test_device_stray.py
def test_a_tiny_harvest_on_the_device(device: str, tmp_path: Path) -> None:
    from lenscope.records import Records, harvest
    from tests.records.helpers import small_config, tiny_model, token_dataset

    corpus = [str(token_dataset(tmp_path / "tokens"))]
    runs = iter(["cpu", "device"])

    def records(model: HookedTransformer) -> Any:
        dest = tmp_path / next(runs)
        cfg = small_config(n_tokens=128)
        harvest(model, dest, config=cfg, corpus=corpus, progress=False, log=lambda _: None)
        recs = Records(dest, model)
        try:
            return recs.nodes(recs.node_ids())
        finally:
            recs.close()

    same_result(device, records, tiny_model())


@pytest.mark.parametrize("device", GPU_ONLY)  # on the CPU: tests/test_device_stray.py
def test_circuits_on_the_device(device: str) -> None:
    from lenscope.circuits.report import circuit_report

    model = load_model("attn2")
    prompt = model.to_tokens("def f(a, b):")[0]
    same_result(device, lambda m: circuit_report(m, prompt=prompt, n_rows=2).to_json(), model)


@pytest.mark.parametrize("device", GPU_ONLY)  # on the CPU: tests/test_device_stray.py
def test_one_server_request_on_the_device(device: str) -> None:
    from fastapi.testclient import TestClient

    from lenscope.server import ServerConfig, ServerState, create_app

    body = {
        "prompt": PROMPT,
        "question": {"kind": "logit_diff", "target": [")"], "distractor": [","]},
        "top_k": 5,
    }
    answers = []
    for dev in ("cpu", device):
        state = ServerState.load(ServerConfig("mini", auto=False, device=dev), lambda _m: None)
        assert state.model.device.type == dev
        try:
            with TestClient(create_app(state), base_url="http://127.0.0.1") as client:
                r = client.post("/api/why", json=body)
                assert r.status_code == 200, r.text
                answers.append(r.json())
        finally:
            state.close()
    assert_json_close(answers[1], answers[0])


@pytest.mark.parametrize("device", DEVICES)
def test_linear_kernels_on_the_device(device: str) -> None:
    from lenscope.linalg import linear, linear_t

    g = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*s, generator=g) for s in ((64, 96), (96, 80), (80,)))
    want = x.double() @ w.double() + b.double()
    xd, wd, bd = x.to(device), w.to(device), b.to(device)
    got = (linear(xd, wd, bd), linear_t(xd, wd.T.contiguous(), bd))
    assert all(t.device.type == device and close(t, want) for t in got)


def test_hf_weights_keep_their_dtype_and_go_straight_to_the_device(tmp_path: Path) -> None:
    from tests.model.hf_fixtures import make_checkpoint

    hf: Any = make_checkpoint("gpt2", tmp_path)
    hf.to(torch.bfloat16).save_pretrained(tmp_path)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(tmp_path, device=device)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in model.parameters()} == {device}
    as_f32 = load_model(tmp_path, device=device, dtype=torch.float32)
    toks = torch.arange(12, device=device)[None]
    assert close(model(toks), as_f32(toks), atol=0.1, rtol=0.1)  # bf16 rounding, same weights


def test_an_sae_is_loaded_onto_the_device_it_is_asked_for() -> None:
    from lenscope.sae import load_sae

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sae = load_sae("mini-L2-resid_post-topk-k16-n2048", device=device)
    assert {p.device.type for p in sae.parameters()} == {device}
    x = torch.from_numpy(np.ones((2, sae.cfg.d_in), np.float32)).to(device)
    assert sae.encode(x).device.type == device
