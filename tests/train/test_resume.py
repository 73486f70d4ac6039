"""Training is deterministic and resumes exactly after `kill -9`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from lenscope.data.corpus import default_corpus_root

ARGS = [
    "--recipe", "attn1", "--steps", "60", "--ckpt-every", "10", "--eval-every", "30",
    "--vocab-size", "300", "--limit-bytes", "150000", "--no-progress",
]  # fmt: skip


def _cmd(home: Path, *extra: str) -> tuple[list[str], dict[str, str]]:
    corpus = str(default_corpus_root() / "json")
    cmd = [sys.executable, "-m", "lenscope.cli.main", "train", *ARGS, "--corpus", corpus, *extra]
    env = dict(os.environ, LENSCOPE_HOME=str(home), OMP_NUM_THREADS="1")
    return cmd, env


def _weights(home: Path) -> dict[str, object]:
    return load_file(str(home / "models" / "attn1" / "model.safetensors"))


@pytest.mark.slow
def test_kill_minus_9_then_resume_gives_identical_weights(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    cmd, env = _cmd(a)
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)

    cmd, env = _cmd(b)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = b / "runs" / "attn1" / "checkpoint" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline:
        if state.is_file() and json.loads(state.read_text())["step"] >= 20:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(state.read_text())["step"]
    assert 20 <= killed_at < 60, "the run must be killed mid-way"
    assert not (b / "models" / "attn1").exists()
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=300)
    assert f"resuming attn1 from step {killed_at}" in out.stdout

    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert (wa[k] == wb[k]).all(), k  # type: ignore[union-attr]
    ma = (a / "runs" / "attn1" / "metrics.jsonl").read_text()
    mb = (b / "runs" / "attn1" / "metrics.jsonl").read_text()
    assert ma == mb
