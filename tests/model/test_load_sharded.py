"""Large checkpoints: sharded safetensors with their index, bf16/fp16 kept in their own dtype, and
weights copied out of the memory-mapped files (the files can go once the model is loaded)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from lenscope import load_model
from tests.model.hf_fixtures import make_checkpoint

FAMILIES = ["llama", "gpt2", "neox"]
PROMPT = torch.tensor([[3, 14, 15, 92, 65, 35, 89, 79, 32, 38]])


def _save(model: torch.nn.Module, d: Path, dtype: torch.dtype, shard: str | None) -> Path:
    m = copy.deepcopy(model).to(dtype)
    if shard is None:
        m.save_pretrained(d, safe_serialization=True)
    else:
        m.save_pretrained(d, safe_serialization=True, max_shard_size=shard)
    return d


@pytest.fixture(scope="module", params=FAMILIES)
def checkpoints(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[torch.nn.Module, dict[str, Path]]:
    """One random model saved by transformers: sharded and single, in bf16 and fp16."""
    root = tmp_path_factory.mktemp(request.param)
    model = make_checkpoint(request.param, root / "f32")
    out = {}
    for dt in (torch.bfloat16, torch.float16):
        name = str(dt).removeprefix("torch.")
        out[name + "-sharded"] = _save(model, root / (name + "-sharded"), dt, "50KB")
        out[name] = _save(model, root / name, dt, None)
    return model, out


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sharded_checkpoint_keeps_its_dtype_and_matches_the_single_file(
    checkpoints: tuple[torch.nn.Module, dict[str, Path]], dtype: torch.dtype
) -> None:
    _, paths = checkpoints
    name = str(dtype).removeprefix("torch.")
    sharded = paths[name + "-sharded"]
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) >= 3  # really several shards
    a, b = load_model(sharded), load_model(paths[name])
    assert {p.dtype for p in a.parameters()} == {dtype}
    assert all(p.is_contiguous() for p in a.parameters())
    with torch.no_grad():
        assert torch.equal(a(PROMPT), b(PROMPT))
        for (ka, pa), (kb, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
            assert ka == kb and torch.equal(pa, pb)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_checkpoint_against_transformers(
    checkpoints: tuple[torch.nn.Module, dict[str, Path]], dtype: torch.dtype
) -> None:
    """Converted to float32, a half checkpoint's logits equal transformers' float32 forward on
    the same rounded weights to 1e-4; in its own dtype they agree within half rounding."""
    hf, paths = checkpoints
    sharded = paths[str(dtype).removeprefix("torch.") + "-sharded"]
    rounded = copy.deepcopy(hf).to(dtype).float()
    with torch.no_grad():
        want = rounded(PROMPT).logits
        got = load_model(sharded, dtype=torch.float32)(PROMPT)
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
        half = load_model(sharded)(PROMPT)
        ref = copy.deepcopy(hf).to(dtype)(PROMPT).logits
    assert half.dtype == dtype
    tol = 0.06 if dtype == torch.bfloat16 else 0.01
    assert (half.float() - want).abs().max() < tol * want.abs().max()
    assert (half.float() - ref.float()).abs().max() < tol * want.abs().max()
    assert (half[0].argmax(-1) == want[0].argmax(-1)).float().mean() >= 0.8


def test_explicit_dtype_converts(checkpoints: tuple[torch.nn.Module, dict[str, Path]]) -> None:
    _, paths = checkpoints
    m = load_model(paths["bfloat16-sharded"], dtype=torch.float16)
    assert {p.dtype for p in m.parameters()} == {torch.float16}


def test_the_model_owns_its_weights(
    checkpoints: tuple[torch.nn.Module, dict[str, Path]], tmp_path: Path
) -> None:
    """Weights are copied out of the mapped files: editing them leaves the files unchanged, and
    the checkpoint can be deleted while the model keeps working."""
    import shutil

    _, paths = checkpoints
    d = tmp_path / "copy"
    shutil.copytree(paths["bfloat16-sharded"], d)
    before = {f.name: f.read_bytes() for f in d.iterdir()}
    m = load_model(d)
    with torch.no_grad():
        want = m(PROMPT).clone()
        for p in m.parameters():
            p.add_(1.0)
    assert {f.name: f.read_bytes() for f in d.iterdir()} == before
    with torch.no_grad():
        for p in m.parameters():
            p.sub_(1.0)
    shutil.rmtree(d)
    m2 = load_model(paths["bfloat16-sharded"])
    with torch.no_grad():
        assert torch.equal(m2(PROMPT), want)
        assert m(PROMPT).isfinite().all()


def test_a_pytorch_model_bin_loads_like_its_safetensors(tmp_path: Path) -> None:
    """The pickle fallback (read with weights_only, memory-mapped when in zip format)."""
    from safetensors.torch import load_file

    make_checkpoint("gpt2", tmp_path / "st")
    (tmp_path / "bin").mkdir()
    for f in ("config.json", "tokenizer.json"):
        (tmp_path / "bin" / f).write_bytes((tmp_path / "st" / f).read_bytes())
    sd = load_file(str(tmp_path / "st" / "model.safetensors"))
    torch.save(sd, tmp_path / "bin" / "pytorch_model.bin")
    a, b = load_model(tmp_path / "st"), load_model(tmp_path / "bin")
    with torch.no_grad():
        assert torch.equal(a(PROMPT), b(PROMPT))


def test_the_model_is_built_without_memory_then_filled(
    checkpoints: tuple[torch.nn.Module, dict[str, Path]],
) -> None:
    """The empty model has meta parameters and real buffers; building it leaves every other
    module alone; the loaded model's parameters are real, trainable, and none is left on meta."""
    from lenscope.model.load import empty_model

    _, paths = checkpoints
    m = load_model(paths["bfloat16-sharded"])
    empty = empty_model(m.cfg, None)
    assert all(p.is_meta for p in empty.parameters())
    assert not any(b.is_meta for b in empty.buffers())
    assert torch.nn.Linear(2, 2).weight.device.type == "cpu"  # the patch is gone
    assert not any(p.is_meta for p in m.parameters())
    assert all(isinstance(p, torch.nn.Parameter) and p.requires_grad for p in m.parameters())
    names = [n for n, _ in m.named_parameters()]
    assert names == [n for n, _ in empty.named_parameters()]
