"""Data parallelism: 2 CPU processes (gloo) give the 1-process result for the same global batch."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
from torch.multiprocessing.spawn import spawn

from lenscope.sae import train_sae
from lenscope.sae.checkpoint import latest_checkpoint
from lenscope.sae.distributed import Comm
from tests.sae.helpers import ddp_setup, ddp_worker, tiny_tokens


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_processes_match_one(tmp_path: Path) -> None:
    spawn(ddp_worker, args=(2, _free_port(), str(tmp_path / "dp")), nprocs=2, join=True)
    m, cfg, tc = ddp_setup()
    one = train_sae(
        cfg,
        tc,
        model=m,
        tokens=tiny_tokens(),
        out=tmp_path / "one" / "sae",
        run_dir=tmp_path / "one" / "run",
        progress=False,
        dtype=torch.float64,
        comm=Comm(),
        log=lambda _s: None,
    )
    assert one.steps == 14
    a = latest_checkpoint(tmp_path / "one" / "run")
    b = latest_checkpoint(tmp_path / "dp" / "run")
    assert a is not None and b is not None and a.step == b.step == 14
    assert set(a.tensors) == set(b.tensors)
    for name, t in a.tensors.items():
        if t.is_floating_point():
            torch.testing.assert_close(b.tensors[name], t, rtol=1e-9, atol=1e-11, msg=name)
        else:
            assert torch.equal(b.tensors[name], t), name
    # the data-parallel run wrote the artifact once (rank 0)
    assert (tmp_path / "dp" / "sae" / "manifest.json").is_file()
