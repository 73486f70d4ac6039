"""Training: the recipe's invariants, dense-reference equality, exact resume (also after kill -9),
cache == live, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lenscope.errors import ArtifactError, CheckpointError, InputError
from lenscope.model import fingerprint
from lenscope.sae import SAEConfig, SparseAutoencoder, TrainConfig, load_sae, train_sae
from lenscope.sae.buffer import CachedSource, MemorySource
from lenscope.sae.cache import write_cache
from lenscope.sae.checkpoint import latest_checkpoint, save_checkpoint
from lenscope.sae.distributed import Comm
from lenscope.sae.step import TrainState
from lenscope.sae.train import make_optimizer, sae_config_for
from tests.sae.helpers import sparse_blocks, tiny_model, tiny_tokens

D = torch.float64
ROOT = Path(__file__).resolve().parents[2]


def _cfg(arch: str = "topk", k: int | None = 3) -> SAEConfig:
    return SAEConfig(d_in=16, d_sae=64, architecture=arch, k=k, hook_name="synthetic")


def _train(tmp: Path, tc: TrainConfig, arch: str = "topk", **kw: object) -> object:
    return train_sae(
        _cfg(arch, None if arch == "relu" else 3),
        tc,
        source=MemorySource(sparse_blocks()),
        out=tmp / "sae",
        run_dir=tmp / "run",
        progress=False,
        dtype=D,
        log=lambda _s: None,
        comm=Comm(),
        **kw,  # type: ignore[arg-type]
    )


def _params(sae: SparseAutoencoder) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in sae.named_parameters()}


def test_topk_recipe_invariants_and_artifact(tmp_path: Path) -> None:
    m = tiny_model()
    cfg = sae_config_for(m, "blocks.1.hook_resid_post", k=4, d_sae=128)
    tc = TrainConfig(steps=30, batch_size=256, buffer_tokens=1024, ckpt_every=10)
    res = train_sae(
        cfg,
        tc,
        model=m,
        tokens=tiny_tokens(),
        out=tmp_path / "s",
        run_dir=tmp_path / "r",
        progress=False,
        log=lambda _s: None,
        comm=Comm(),
    )
    assert res.history[-1]["nmse"] < res.history[0]["nmse"]
    assert res.l0 == 4.0  # TopK: exactly k per token
    assert res.lr == pytest.approx(2e-4 / (128 / 2**14) ** 0.5)
    sae = load_sae(tmp_path / "s")
    norms = sae.W_dec.norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-6, rtol=0)
    man = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert man["kind"] == "sae"
    c = man["data"]["config"]
    assert c["hook_name"] == "blocks.1.hook_resid_post" and c["d_in"] == 32
    assert c["model_fingerprint"] == fingerprint(m) and c["k"] == 4


def test_init_is_tied_and_centred() -> None:
    x = sparse_blocks()[0]
    sae = SparseAutoencoder(_cfg(), dtype=D, seed=0)
    torch.testing.assert_close(sae.W_enc, sae.W_dec.t())  # encoder = decoder transpose
    sae.init_from_data(x)
    # b_dec is the geometric median: the mean of unit vectors towards the points is ~0
    u = x - sae.b_dec
    assert float((u / u.norm(dim=1, keepdim=True)).mean(0).norm().detach()) < 1e-4
    # encoder rescaled so random unit inputs around b_dec reconstruct with mean norm 1
    g = torch.Generator().manual_seed(1234)
    r = torch.randn(256, 16, generator=g, dtype=D)
    r = r / r.norm(dim=1, keepdim=True)
    rec = sae.reconstruct(r + sae.b_dec) - sae.b_dec
    assert float(rec.norm(dim=1).mean().detach()) == pytest.approx(1.0, rel=1e-6)
    torch.testing.assert_close(sae.W_enc / sae.W_enc.norm(dim=0), sae.W_dec.t())


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
def test_sparse_training_equals_dense_reference(tmp_path: Path, arch: str) -> None:
    tc = TrainConfig(steps=8, batch_size=128, ckpt_every=100, auxk=4, dead_tokens=256)
    sparse = _train(tmp_path / "a", tc, arch, save=False).sae  # type: ignore[attr-defined]
    dense = _train(
        tmp_path / "b", TrainConfig(**(tc.to_dict() | {"dense": True})), arch, save=False
    ).sae  # type: ignore[attr-defined]
    for (n, a), (_, b) in zip(sparse.named_parameters(), dense.named_parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10, msg=n)
    torch.testing.assert_close(sparse.threshold, dense.threshold)


def test_resume_is_exact(tmp_path: Path) -> None:
    tc = TrainConfig(steps=12, batch_size=128, ckpt_every=4, multi_topk=True, dead_tokens=256)
    full = _train(tmp_path / "full", tc, save=False)
    part = _train(tmp_path / "part", tc, stop_after=6, save=False)
    assert part.steps == 6 and part.path is None  # type: ignore[attr-defined]
    resumed = _train(tmp_path / "part", tc, save=False)
    assert resumed.resumed_from == 4  # type: ignore[attr-defined]
    a, b = _params(full.sae), _params(resumed.sae)  # type: ignore[attr-defined]
    for n in a:
        assert torch.equal(a[n], b[n]), n
    again = _train(tmp_path / "part", tc, save=False)  # a finished run: nothing left to do
    assert again.resumed_from == 12 and again.nmse == resumed.nmse  # type: ignore[attr-defined]


def test_kill_9_then_resume_is_exact(tmp_path: Path) -> None:
    tc = TrainConfig(steps=40, batch_size=128, ckpt_every=1, dead_tokens=256)
    script = (
        "import torch, json\n"
        "torch.set_num_threads(1)  # as this process (see conftest): same arithmetic\n"
        "from pathlib import Path\n"
        "from lenscope.sae import TrainConfig, train_sae\n"
        "from lenscope.sae.distributed import Comm\n"
        "from tests.sae.helpers import SlowSource, sparse_blocks\n"
        "from tests.sae.test_train import _cfg\n"
        f"tc = TrainConfig(**json.loads({json.dumps(json.dumps(tc.to_dict()))}))\n"
        f"train_sae(_cfg(), tc, source=SlowSource(sparse_blocks(), 0.15), out=Path({str(tmp_path / 'sae')!r}),"
        f" run_dir=Path({str(tmp_path / 'run')!r}), progress=False, dtype=torch.float64, comm=Comm())\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            ck = latest_checkpoint(tmp_path / "run") if (tmp_path / "run").is_dir() else None
            if ck is not None and ck.step >= 3:
                break
            assert proc.poll() is None, "the training subprocess ended early"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    survivor = latest_checkpoint(tmp_path / "run")
    assert survivor is not None and 3 <= survivor.step < 40
    resumed = _train(tmp_path, tc)  # same run dir, no sleeping source: same data
    assert resumed.resumed_from == survivor.step  # type: ignore[attr-defined]
    full = _train(tmp_path / "ref", tc, save=False)
    a, b = _params(full.sae), _params(resumed.sae)  # type: ignore[attr-defined]
    for n in a:
        assert torch.equal(a[n], b[n]), n


def test_diverged_state_never_replaces_a_good_checkpoint(tmp_path: Path) -> None:
    sae = SparseAutoencoder(_cfg(), dtype=D)
    tc = TrainConfig()
    opt = make_optimizer(sae, tc, 1e-3)
    state = TrainState(step=5, tokens_since_fired=torch.zeros(64, dtype=torch.long))
    good = save_checkpoint(tmp_path, sae, opt, state, {"x": 1})
    with torch.no_grad():
        sae.W_dec[0, 0] = float("nan")
    state.step = 6
    with pytest.raises(CheckpointError, match="diverged"):
        save_checkpoint(tmp_path, sae, opt, state, {"x": 1})
    ck = latest_checkpoint(tmp_path)
    assert ck is not None and ck.step == 5 and ck.path == good


def test_nan_activations_are_refused(tmp_path: Path) -> None:
    blocks = sparse_blocks()
    blocks[0][7, 3] = float("nan")
    tc = TrainConfig(steps=3, batch_size=128)
    with pytest.raises(InputError, match="NaN"):
        train_sae(
            _cfg(),
            tc,
            source=MemorySource(blocks),
            run_dir=tmp_path,
            out=tmp_path / "o",
            progress=False,
            dtype=D,
            comm=Comm(),
        )


def test_cached_training_equals_live(tmp_path: Path) -> None:
    m = tiny_model()
    toks = tiny_tokens()
    hook = "blocks.0.hook_mlp_out"
    tc = TrainConfig(steps=6, batch_size=256, buffer_tokens=512, ckpt_every=100)
    write_cache(
        m, hook, toks, tmp_path / "cache", n_tokens=512 * 3, buffer_tokens=512, progress=False
    )
    src = CachedSource(tmp_path / "cache")
    assert src.n_blocks == 3 and src.hook_name == hook
    cfg = sae_config_for(m, hook, k=4, d_sae=64)
    kw = {"progress": False, "save": False, "log": lambda _s: None, "comm": Comm()}
    live = train_sae(cfg, tc, model=m, tokens=toks, run_dir=tmp_path / "a", **kw)  # type: ignore[arg-type]
    cached = train_sae(cfg, tc, source=src, run_dir=tmp_path / "b", **kw)  # type: ignore[arg-type]
    assert live.sae is not None and cached.sae is not None
    for a, b in zip(live.sae.parameters(), cached.sae.parameters(), strict=True):
        assert torch.equal(a, b)


def test_batchtopk_and_relu_train(tmp_path: Path) -> None:
    tc = TrainConfig(steps=20, batch_size=128, ckpt_every=100)
    bt = _train(tmp_path / "bt", tc, "batchtopk", save=False)
    assert bt.l0 == pytest.approx(3.0)  # type: ignore[attr-defined]  # tokens * k per batch
    assert float(bt.sae.threshold[0]) > 0  # type: ignore[attr-defined]
    lo = _train(
        tmp_path / "lo",
        TrainConfig(**(tc.to_dict() | {"l1_coefficient": 0.01})),
        "relu",
        save=False,
    )
    hi = _train(
        tmp_path / "hi",
        TrainConfig(**(tc.to_dict() | {"l1_coefficient": 30.0})),
        "relu",
        save=False,
    )
    assert hi.l0 < lo.l0  # type: ignore[attr-defined]


def test_bad_input_messages(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="k = 100 is larger than the latent count 64"):
        SAEConfig(d_in=16, d_sae=64, k=100)
    m = tiny_model()
    with pytest.raises(InputError, match=r"no hook point 'blocks\.9\.hook_resid_post'"):
        sae_config_for(m, "blocks.9.hook_resid_post")
    with pytest.raises(InputError, match=r"d_in = 16 .* 32-dimensional"):
        train_sae(
            SAEConfig(d_in=16, d_sae=64, k=4, hook_name="blocks.0.hook_resid_post"),
            TrainConfig(steps=2),
            model=m,
            tokens=tiny_tokens(),
            progress=False,
            comm=Comm(),
            run_dir=tmp_path / "r",
        )
    with pytest.raises(InputError, match="not one vector per token"):
        sae_config_for(m, "blocks.0.attn.hook_pattern")
    with pytest.raises(ArtifactError, match="'model' artifact, not a 'sae'"):
        from lenscope.model import save_model

        save_model(m, tmp_path / "model")
        load_sae(tmp_path / "model")
    bad = SparseAutoencoder(_cfg())
    from lenscope.sae import save_sae

    save_sae(bad, tmp_path / "sae")
    f = tmp_path / "sae" / "sae.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="corrupt"):
        load_sae(tmp_path / "sae")
