"""The phase-change measurements on fake training runs made of hand-built snapshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import torch

from lenscope import HookedTransformer, save_model
from lenscope.circuits.heads import head_scores
from lenscope.circuits.phase import (
    SnapshotsMissingError,
    context_windows,
    eval_windows,
    list_snapshots,
    load_eval_tokens,
    phase_change,
)
from lenscope.circuits.plots import phase_change_figure, save_figure
from lenscope.errors import ArtifactError, InputError
from tests.circuits.models import induction_model


def repeated_stream(V: int = 64, chunk: int = 12, n: int = 60, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(n):
        r = rng.integers(1, V, size=chunk)
        parts += [r, r]
    return np.concatenate(parts).astype(np.int64)


def make_runs(root: Path) -> dict[str, list[HookedTransformer]]:
    """runs/attn2: layer 1 off at step 0, on at step 100; runs/attn1: one layer at both."""
    full = induction_model()
    early = induction_model()
    with torch.no_grad():
        cast(Any, early.blocks[1]).attn.w_qkv.zero_()
    one = induction_model(two_layers=False)
    models = {"attn2": [early, full], "attn1": [one, one]}
    for recipe, ms in models.items():
        for step, m in zip((0, 100), ms, strict=True):
            dest = root / recipe / "snapshots" / f"step_{step:07d}"
            save_model(m, dest, provenance={"recipe": recipe, "step": step, "tokens": step * 96})
    return models


def brute_icl(model: HookedTransformer, windows: torch.Tensor) -> float:
    (e0, e1), (l0, l1) = context_windows(model.cfg.n_ctx)
    with torch.no_grad():
        logits = model(windows).double()
    early, late = [], []
    for b in range(windows.shape[0]):
        for pos in range(1, windows.shape[1]):
            lp = torch.log_softmax(logits[b, pos - 1], -1)[windows[b, pos]]
            if e0 <= pos < e1:
                early.append(-float(lp))
            if l0 <= pos < l1:
                late.append(-float(lp))
    return float(np.mean(late) - np.mean(early))


def test_phase_change_on_fake_runs(tmp_path: Path) -> None:
    models = make_runs(tmp_path)
    stream = repeated_stream()
    curves, missing = phase_change(("attn1", "attn2"), tmp_path, stream, n_windows=8)
    assert missing == []
    by = {c.recipe: c for c in curves}
    two, one = by["attn2"].points, by["attn1"].points
    assert [p.step for p in two] == [0, 100] and [p.tokens for p in two] == [0, 9600]
    windows = eval_windows(stream, 24, 8)
    for p, m in zip(two, models["attn2"], strict=True):
        assert p.icl_score == pytest.approx(brute_icl(m, windows), abs=1e-4)
        head, score = head_scores(m, n_seqs=8).best("induction")
        assert p.induction_head == head and p.induction_score == pytest.approx(score)
    assert two[1].induction_score > 0.5 > two[0].induction_score
    assert two[1].icl_score < two[0].icl_score - 1.0  # the induction head uses the context
    assert max(p.induction_score for p in one) < 0.3
    assert all(p.prev_token_head == "L0.H0" for p in one)
    files = save_figure(phase_change_figure(curves), tmp_path / "out", "phase")
    assert [f.suffix for f in files] == [".png", ".svg"] and all(f.stat().st_size for f in files)


def test_missing_snapshots_say_how_to_make_them(tmp_path: Path) -> None:
    with pytest.raises(SnapshotsMissingError, match=r"lenscope train --recipe attn2"):
        phase_change(("attn2",), tmp_path, repeated_stream())
    with pytest.raises(SnapshotsMissingError, match=r"--recipe attn1` and `lenscope train"):
        phase_change(("attn1", "attn2"), tmp_path, repeated_stream())
    make_runs(tmp_path)
    (tmp_path / "attn1" / "snapshots" / "step_0000000" / "manifest.json").unlink()
    assert [s for s, _ in list_snapshots(tmp_path / "attn1")] == [100]
    curves, missing = phase_change(("attn3", "attn2"), tmp_path, repeated_stream(), n_windows=2)
    assert [c.recipe for c in curves] == ["attn2"] and "attn3" in missing[0]


def test_eval_tokens_from_npy_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "ids.npy"
    np.save(f, np.arange(100))
    assert load_eval_tokens(f).tolist() == list(range(100))
    np.save(f, np.ones((2, 2), dtype=np.int64))
    with pytest.raises(InputError, match="1-D"):
        load_eval_tokens(f)
    with pytest.raises(InputError, match="neither"):
        load_eval_tokens(tmp_path / "nothing.txt")
    make_runs(tmp_path)
    with pytest.raises(InputError, match="vocabulary"):
        phase_change(("attn2",), tmp_path, np.full(500, 100, dtype=np.int64))


def test_shipped_curves_end_at_the_shipped_models(tmp_path: Path) -> None:
    """With no local snapshots the shipped curves are drawn; their last points were measured on
    the very models that ship (fp32 snapshot vs fp16 artifact: scores within 0.02)."""
    from lenscope import load_model
    from lenscope.circuits.phase import load_curves, shipped_curves_dir

    curves, notes = phase_change(("attn1", "attn2"), tmp_path, shipped=True)
    assert [c.recipe for c in curves] == ["attn1", "attn2"]
    assert "shipped" in notes[0] and "lenscope train --recipe" in notes[0]
    for c in curves:
        steps = [p.step for p in c.points]
        assert steps == sorted(steps) and len(steps) > 10
        last = c.points[-1]
        head, score = head_scores(load_model(c.recipe), n_seqs=8).best("induction")
        assert last.induction_score == pytest.approx(score, abs=0.02), c.recipe
        if c.recipe == "attn2":
            assert last.induction_head == head == "L1.H3" and score > 0.4
            # the phase change: no induction head early on
            assert c.points[len(steps) // 2].induction_score < 0.1
        else:
            assert score < 0.05
    # local snapshots win over the shipped curve of the same recipe
    make_runs(tmp_path)
    mixed, _ = phase_change(("attn1", "attn2"), tmp_path, repeated_stream(), 2, shipped=True)
    assert [len(c.points) for c in mixed] == [2, 2]
    with pytest.raises(ArtifactError, match="malformed"):
        bad = tmp_path / "bad"
        bad.mkdir()
        text = (shipped_curves_dir() / "manifest.json").read_text()
        (bad / "manifest.json").write_text(text.replace('"points"', '"pointz"'))
        load_curves(bad, ("attn2",))
