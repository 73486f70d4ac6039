"""Exactness of resume after kill -9 and of torchrun sharding: records identical to one clean run."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from lenscope import load_model
from lenscope.records import HarvestConfig, harvest
from lenscope.records.shards import done_shards, state_files, work_dir
from lenscope.sae import load_sae
from tests.records.helpers import assert_same_records, small_config

JOB = Path(__file__).with_name("harvest_job.py")
CFG = small_config(n_tokens=1536, shard_rows=4)  # 96 rows of 16: 24 shards


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def in_process(saved: dict[str, Path], dest: Path, cfg: HarvestConfig = CFG) -> object:
    with one_thread():
        return harvest(
            load_model(saved["model"]),
            dest,
            saes=[load_sae(saved["sae"])],
            config=cfg,
            corpus=[str(saved["tokens"])],
            progress=False,
            log=lambda _: None,
        )


def job_args(saved: dict[str, Path], dest: Path, cfg: HarvestConfig = CFG) -> list[str]:
    d = dataclasses.asdict(cfg)
    d["quantile_levels"] = list(cfg.quantile_levels)
    return [str(saved["model"]), str(saved["sae"]), str(saved["tokens"]), str(dest), json.dumps(d)]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}


def test_kill_9_mid_harvest_then_resume_gives_identical_records(
    saved: dict[str, Path], tmp_path: Path
) -> None:
    in_process(saved, tmp_path / "clean")
    dest = tmp_path / "killed"
    work = work_dir(dest)
    p = subprocess.Popen([sys.executable, str(JOB), *job_args(saved, dest), "0.1"], env=env())
    done: set[int] = set()
    deadline = time.time() + 600
    while time.time() < deadline and len(done) < 3:
        time.sleep(0.05)
        with contextlib.suppress(Exception):
            done = set().union(*(done_shards(f) for f in state_files(work)))
    p.send_signal(signal.SIGKILL)
    assert p.wait() == -signal.SIGKILL
    n_shards = 24
    done = set().union(*(done_shards(f) for f in state_files(work)))
    assert 3 <= len(done) < n_shards, "the job must die mid-harvest"
    assert not (dest / "manifest.json").exists()
    res = in_process(saved, dest)
    assert res.shards_run == n_shards - len(done)  # type: ignore[attr-defined]
    assert_same_records(tmp_path / "clean", dest)
    assert not work.exists()


def test_torchrun_two_gloo_ranks_match_one_process(saved: dict[str, Path], tmp_path: Path) -> None:
    """5 shards on 2 ranks (3 and 2, the last one short): the records are one process's, and
    every rank reports the run's whole token count."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun is not None
    cfg = dataclasses.replace(CFG, shard_rows=20)  # 96 rows of 16: 5 shards
    one = in_process(saved, tmp_path / "one", cfg)
    assert getattr(one, "n_tokens", None) == 1536
    r = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node",
            "2",
            str(JOB),
            *job_args(saved, tmp_path / "two", cfg),
        ],
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_records(tmp_path / "one", tmp_path / "two")
    reports = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert sorted(x["rank"] for x in reports) == [0, 1]
    assert [x["n_tokens"] for x in reports] == [1536, 1536]
    assert sorted(x["shards_run"] for x in reports) == [2, 3]
