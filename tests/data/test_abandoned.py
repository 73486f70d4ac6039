"""A data preparation killed mid-way leaves a temp folder; the next preparation removes it.

The first test really kills (SIGKILL) a subprocess inside `prepare_data`, after its token
dataset's temp folder is written; the others pin which folders count as abandoned.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import lenscope
from lenscope.artifacts import _HOST, UNOWNED_AGE_S, remove_abandoned
from lenscope.data import prepare_data

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import lenscope.data.tokens as tokens
    from lenscope.data import prepare_data

    def stall(tok, d):  # called inside the temp folder, after the token files are written
        Path(sys.argv[2]).write_text(str(d))
        time.sleep(600)

    tokens.save_tokenizer = stall
    prepare_data([sys.argv[1]], 300, progress=False, log=lambda _m: None)
    """
)


def _corpus(d: Path) -> Path:
    d.mkdir()
    for i in range(30):
        (d / f"f{i:02d}.txt").write_text(f"def f{i}(x):\n    return x * {i} + 1\n" * 20)
    return d


def _hidden(data: Path) -> list[str]:
    return sorted(p.name for p in data.iterdir() if p.name.startswith("."))


def test_a_killed_preparation_is_cleaned_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    corpus = _corpus(tmp_path / "corpus")
    marker = tmp_path / "started"
    src = str(Path(lenscope.__file__).parents[1])
    env = {**os.environ, "LENSCOPE_HOME": str(home), "PYTHONPATH": src}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(corpus), str(marker)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, "the preparation ended before it could be killed"
            assert time.monotonic() < deadline, "the preparation never reached its temp folder"
            time.sleep(0.1)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    data = home / "data"
    left = _hidden(data)
    assert len(left) == 1 and ".tmp-" in left[0], left  # what a killed run leaves behind
    assert (data / left[0] / "train.bin").is_file()
    assert Path(marker.read_text()).name == left[0]

    monkeypatch.setenv("LENSCOPE_HOME", str(home))
    ds = prepare_data([str(corpus)], 300, progress=False, log=lambda _m: None)
    assert _hidden(data) == []
    assert len(ds.train) > 0


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_only_folders_of_dead_writers_on_this_host_are_removed(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getpid()
    names = {
        f".stdlib-x-bpe300.tmp-{_HOST}-{dead}-ab_12cd": False,  # killed writer: removed
        f".stdlib-x-bpe300.old-{_HOST}-{dead}": False,
        f".stdlib-x-bpe300.tmp-{_HOST}-{alive}-ab_12cd": True,  # a live writer: kept
        f".stdlib-x-bpe300.tmp-otherhost-{dead}-ab_12cd": True,  # another machine's: kept
        ".stdlib-x-bpe300.tmp-k3j_9x2a": True,  # no owner, recent: kept
        ".old-unowned.tmp-q8w_e7r1": False,  # no owner, older than a day: removed
        "stdlib-x-bpe300": True,  # artifacts themselves are never touched
        ".hidden": True,
    }
    for n in names:
        (tmp_path / n).mkdir()
        (tmp_path / n / "train.bin").write_bytes(b"\0" * 8)
    old = time.time() - UNOWNED_AGE_S - 60
    os.utime(tmp_path / ".old-unowned.tmp-q8w_e7r1", (old, old))
    remove_abandoned(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, k in names.items() if k)
