"""Transcoder training: the sparse kernels equal the dense path, every activation learns a
synthetic MLP, the JumpReLU estimator's gradients are the formula's, a stopped run resumes to
exactly the uninterrupted result, and 2 processes (gloo) match 1."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.multiprocessing.spawn import spawn

from lenscope.errors import InputError
from lenscope.sae.checkpoint import latest_checkpoint
from lenscope.sae.config import TrainConfig
from lenscope.sae.distributed import Comm
from lenscope.sae.step import TrainState
from lenscope.sae.transcoder_stack import TranscoderSetConfig, TranscoderStack, jumprelu_ste
from lenscope.sae.transcoder_step import SparsityConfig, compute_losses
from lenscope.sae.transcoder_train import train_transcoders, transcoder_config_for
from tests.sae.helpers import tiny_model
from tests.sae.tc_helpers import mlp_blocks, mlp_source

L, D = 2, 16


def _cfg(activation: str, **kw: Any) -> TranscoderSetConfig:
    k = kw.pop("k", 4 if activation in ("topk", "batchtopk") else None)
    return TranscoderSetConfig(
        d_in=D,
        d_sae=64,
        d_out=D,
        layers=(0, 1),
        activation=activation,
        k=k,
        **kw,
    )


def _train(cfg: TranscoderSetConfig, tmp: Path, steps: int = 100, **kw: object) -> object:
    tc = TrainConfig(
        steps=steps,
        batch_size=256,
        lr=3e-3,
        ckpt_every=50,
        dead_tokens=2048,
        **kw,  # type: ignore[arg-type]
    )
    return train_transcoders(
        cfg,
        tc,
        source=mlp_source(),
        run_dir=tmp / "run",
        out=tmp / "set",
        progress=False,
        save=False,
        log=lambda _s: None,
    )


@pytest.mark.parametrize("activation", ["topk", "batchtopk"])
def test_sparse_kernels_equal_the_dense_path(activation: str) -> None:
    cfg = _cfg(activation, skip=True)
    blocks, _ = mlp_blocks()
    rows = blocks[0][:128]
    x, y = rows[:, : L * D].reshape(-1, L, D), rows[:, L * D :].reshape(-1, L, D)
    grads = []
    for dense in (False, True):
        stack = TranscoderStack(cfg, seed=3)
        with torch.no_grad():
            stack.W_skip.add_(0.1)  # type: ignore[union-attr]
        dead = torch.zeros(L, cfg.d_sae, dtype=torch.bool)
        dead[:, ::3] = True  # AuxK active
        tc = TrainConfig(dense=dense)
        loss, fired, stats = compute_losses(
            stack,
            x,
            y,
            tc,
            SparsityConfig(),
            TrainState(),
            torch.tensor([1.0, 2.0]),
            dead,
            x.shape[0],
            Comm(),
        )
        loss.backward()
        grads.append(
            (loss.detach(), fired, stats, {n: p.grad for n, p in stack.named_parameters()})
        )
    (l1, f1, s1, g1), (l2, f2, s2, g2) = grads
    torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
    assert torch.equal(f1, f2)
    for key in ("sse", "l0", "auxk"):
        torch.testing.assert_close(s1[key], s2[key], rtol=1e-5, atol=1e-6)
    for n in g1:
        torch.testing.assert_close(g1[n], g2[n], rtol=1e-4, atol=1e-6, msg=n)


@pytest.mark.parametrize(
    ("activation", "extra"),
    [
        ("topk", {}),
        ("batchtopk", {}),
        ("relu", {}),
        ("jumprelu", {}),
        ("topk", {"skip": True}),
        ("relu", {"cross_layer": True}),
        ("jumprelu", {"cross_layer": True}),
    ],
)
def test_every_activation_learns_the_mlp(
    activation: str, extra: dict[str, bool], tmp_path: Path
) -> None:
    res = _train(_cfg(activation, **extra), tmp_path)
    first = res.history[0]["nmse"]  # type: ignore[attr-defined]
    assert res.nmse < 0.6 * first, (res.nmse, first)  # type: ignore[attr-defined]
    assert res.l0 < 64  # type: ignore[attr-defined]
    ts = res.transcoders  # type: ignore[attr-defined]
    assert len(ts.dictionaries()) == L
    if activation == "batchtopk":
        assert bool((ts.transcoders[0].threshold > 0).all())  # learned inference threshold


def test_jumprelu_straight_through_gradients() -> None:
    pre = torch.tensor([[0.5, 0.101, 0.3], [0.0995, 2.0, -1.0]], requires_grad=True)
    t = torch.tensor([0.1, 0.1, 0.1], requires_grad=True)
    eps = 0.01
    out = jumprelu_ste(pre, t, eps)
    g = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    out.backward(g)
    assert torch.equal(out.detach(), torch.tensor([[0.5, 0.101, 0.3], [0.0, 2.0, 0.0]]))
    assert torch.equal(pre.grad, g * (pre.detach() > t.detach()))  # type: ignore[arg-type]
    # threshold: -(t / eps) * rect((pre - t) / eps) * g, summed over rows
    near = ((pre.detach() - 0.1).abs() < eps / 2).float()
    want = (-(0.1 / eps) * near * g).sum(0)
    torch.testing.assert_close(t.grad, want)


def test_stopped_run_resumes_exactly(tmp_path: Path) -> None:
    cfg = _cfg("batchtopk")
    tc = TrainConfig(steps=40, batch_size=128, lr=3e-3, ckpt_every=10, dead_tokens=1024)
    kw: dict[str, Any] = dict(source=mlp_source(), progress=False, log=lambda _s: None)
    train_transcoders(cfg, tc, run_dir=tmp_path / "a", out=tmp_path / "sa", **kw)
    part = train_transcoders(
        cfg, tc, run_dir=tmp_path / "b", out=tmp_path / "sb", stop_after=23, **kw
    )
    assert part.path is None and part.steps == 23
    ck = latest_checkpoint(tmp_path / "b")
    assert ck is not None and ck.step == 20
    rest = train_transcoders(cfg, tc, run_dir=tmp_path / "b", out=tmp_path / "sb", **kw)
    assert rest.resumed_from == 20 and rest.path is not None
    a, b = latest_checkpoint(tmp_path / "a"), latest_checkpoint(tmp_path / "b")
    assert a is not None and b is not None and a.step == b.step == 40
    for name, t in a.tensors.items():
        assert torch.equal(b.tensors[name], t), name
    with pytest.raises(Exception, match="different configuration"):
        train_transcoders(_cfg("topk"), tc, run_dir=tmp_path / "b", out=tmp_path / "sc", **kw)


def test_live_activations_read_both_hooks_in_one_pass(tmp_path: Path) -> None:
    from lenscope.sae.buffer import LiveSource
    from tests.sae.helpers import tiny_tokens

    m = tiny_model()
    cfg = transcoder_config_for(m, activation="topk", k=4, d_sae=32)
    assert cfg.hooks_in() == ["blocks.0.ln2.hook_normalized", "blocks.1.ln2.hook_normalized"]
    toks = tiny_tokens()
    src = LiveSource(
        m,
        cfg.hooks_in() + cfg.hooks_out(),
        toks,
        4 * 32,
        ctx=16,
        buffer_tokens=64,
        forward_batch=2,
        seed=0,
    )
    blk = src.block(0)
    from lenscope.data import sample_batch

    w = sample_batch(toks, src.n_windows, 16, seed=0, step=0)
    _, cache = m.run_with_cache(w)
    for j, h in enumerate(cfg.hooks_in() + cfg.hooks_out()):
        torch.testing.assert_close(blk[:, 32 * j : 32 * (j + 1)], cache[h].reshape(-1, 32))
    res = train_transcoders(
        cfg,
        TrainConfig(steps=3, batch_size=64, buffer_tokens=64, forward_batch=2, ckpt_every=5),
        model=m,
        tokens=toks,
        run_dir=tmp_path / "r",
        out=tmp_path / "s",
        progress=False,
        log=lambda _s: None,
    )
    assert res.path is not None and (res.path / "layer_1.safetensors").is_file()


def test_bad_configs_are_one_line_errors() -> None:
    m = tiny_model()
    with pytest.raises(InputError, match="no layer 5"):
        transcoder_config_for(m, layers=[0, 5])
    with pytest.raises(InputError, match="larger than d_sae"):
        transcoder_config_for(m, activation="topk", k=99, d_sae=32)
    with pytest.raises(InputError, match="cross-layer transcoders train with relu or jumprelu"):
        transcoder_config_for(m, activation="topk", k=4, cross_layer=True)
    with pytest.raises(InputError, match="not supported"):
        transcoder_config_for(m, activation="gelu")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import os

    import torch.distributed as dist

    from lenscope.sae.distributed import comm_from_env

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world)
    )
    torch.set_num_threads(1)
    try:
        _ddp_run(Path(out), comm_from_env())
    finally:
        dist.destroy_process_group()


def _ddp_run(out: Path, comm: Comm) -> object:
    cfg = _cfg("batchtopk", skip=True)
    tc = TrainConfig(steps=12, batch_size=128, lr=3e-3, ckpt_every=6, dead_tokens=256)
    return train_transcoders(
        cfg,
        tc,
        source=mlp_source(),
        run_dir=out / "run",
        out=out / "set",
        progress=False,
        comm=comm,
        log=lambda _s: None,
    )


def test_two_processes_match_one(tmp_path: Path) -> None:
    spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "dp")), nprocs=2, join=True)
    _ddp_run(tmp_path / "one", Comm())
    a = latest_checkpoint(tmp_path / "one" / "run")
    b = latest_checkpoint(tmp_path / "dp" / "run")
    assert a is not None and b is not None and a.step == b.step == 12
    for name, t in a.tensors.items():
        if t.is_floating_point():
            torch.testing.assert_close(b.tensors[name], t, rtol=1e-4, atol=1e-6, msg=name)
        else:
            assert torch.equal(b.tensors[name], t), name
    assert (tmp_path / "dp" / "set" / "manifest.json").is_file()


def test_kill_9_then_resume_is_exact(tmp_path: Path) -> None:
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[2]
    tc = TrainConfig(steps=30, batch_size=128, lr=3e-3, ckpt_every=1, dead_tokens=256)
    script = (
        "import torch, json\n"
        "torch.set_num_threads(1)\n"
        "from pathlib import Path\n"
        "from lenscope.sae.config import TrainConfig\n"
        "from lenscope.sae.distributed import Comm\n"
        "from lenscope.sae.transcoder_train import train_transcoders\n"
        "from tests.sae.helpers import SlowSource\n"
        "from tests.sae.tc_helpers import mlp_blocks\n"
        "from tests.sae.test_transcoder_train import _cfg\n"
        f"tc = TrainConfig(**json.loads({json.dumps(json.dumps(tc.to_dict()))}))\n"
        "train_transcoders(_cfg('batchtopk'), tc, source=SlowSource(mlp_blocks()[0], 0.15),"
        f" out=Path({str(tmp_path / 'set')!r}), run_dir=Path({str(tmp_path / 'run')!r}),"
        " progress=False, comm=Comm(), log=lambda _s: None)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root / "src"), str(root)]))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=root, env=env)
    try:
        deadline = time.time() + 120
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
    assert survivor is not None and 3 <= survivor.step < 30
    kw: dict[str, Any] = dict(source=mlp_source(), progress=False, log=lambda _s: None)
    resumed = train_transcoders(
        _cfg("batchtopk"), tc, run_dir=tmp_path / "run", out=tmp_path / "set", **kw
    )
    assert resumed.resumed_from == survivor.step
    train_transcoders(
        _cfg("batchtopk"), tc, run_dir=tmp_path / "ref", out=tmp_path / "ref-set", **kw
    )
    a, b = latest_checkpoint(tmp_path / "ref"), latest_checkpoint(tmp_path / "run")
    assert a is not None and b is not None and a.step == b.step == 30
    for name, t in a.tensors.items():
        assert torch.equal(b.tensors[name], t), name
