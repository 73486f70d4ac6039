"""The induction-head phase change, measured on a recipe's training snapshots.

"In-context Learning and Induction Heads" (Olsson et al.) plots, over training tokens, the
in-context-learning score (loss late in the context minus loss early: more negative = the model
uses its context more), the best induction score and the best previous-token score. A 2-layer
attention-only model shows all three change together; a 1-layer one never gets an induction head.

Snapshots are the model artifacts the training loop keeps in `runs/<recipe>/snapshots/step_N/`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from lenscope.artifacts import lenscope_home, read_manifest
from lenscope.circuits.heads import head_scores
from lenscope.errors import ArtifactError, InputError, LenscopeError
from lenscope.jsonable import JsonResult
from lenscope.model.load import MODEL_KIND, load_model
from lenscope.model.transformer import HookedTransformer
from lenscope.model.view import isolated

Progress = Callable[[str, int, int], None]


class SnapshotsMissingError(LenscopeError):
    """A recipe has no training snapshots to plot."""


@dataclass(frozen=True)
class PhasePoint(JsonResult):
    step: int
    tokens: int
    icl_score: float  # late loss - early loss, nats
    loss_early: float
    loss_late: float
    induction_score: float
    induction_head: str
    prev_token_score: float
    prev_token_head: str


@dataclass(frozen=True)
class PhaseCurve(JsonResult):
    recipe: str
    run_dir: str
    points: list[PhasePoint]
    early: tuple[int, int]  # context positions averaged for the early loss
    late: tuple[int, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "run_dir": self.run_dir,
            "early_positions": list(self.early),
            "late_positions": list(self.late),
            "points": [vars(p) for p in self.points],
        }


def run_dir_of(recipe: str, runs_root: Path | None = None) -> Path:
    return (runs_root or lenscope_home() / "runs") / recipe


def list_snapshots(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every snapshot artifact, by step."""
    snap = run_dir / "snapshots"
    out = []
    if snap.is_dir():
        for d in snap.iterdir():
            if d.is_dir() and d.name.startswith("step_") and (d / "manifest.json").is_file():
                try:
                    out.append((int(d.name.removeprefix("step_")), d))
                except ValueError:
                    continue
    return sorted(out)


def require_snapshots(recipe: str, run_dir: Path) -> list[tuple[int, Path]]:
    snaps = list_snapshots(run_dir)
    if not snaps:
        raise SnapshotsMissingError(
            f"no training snapshots for {recipe} in {run_dir / 'snapshots'}; run "
            f"`lenscope train --recipe {recipe}` first (it keeps log-spaced snapshots)"
        )
    return snaps


def context_windows(n_ctx: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Early and late position ranges [n/32, n/8) and [3n/4, n) (the paper: token 50 vs 500)."""
    e0, e1 = max(1, n_ctx // 32), max(2, n_ctx // 8)
    l0 = max(e1, n_ctx - n_ctx // 4)
    return (e0, e1), (l0, n_ctx)


@torch.no_grad()
@isolated
def icl_losses(
    model: HookedTransformer, windows: torch.Tensor, early: tuple[int, int], late: tuple[int, int]
) -> tuple[float, float]:
    """Mean next-token loss at early and at late context positions over `windows` [n, ctx]."""
    logits = model(windows)
    lp = logits[:, :-1].float().log_softmax(-1)
    nll = -lp.gather(-1, windows[:, 1:, None])[..., 0]  # nll[:, i] is the loss of token i + 1
    e = nll[:, early[0] - 1 : early[1] - 1].mean()
    l_ = nll[:, late[0] - 1 : late[1] - 1].mean()
    return float(e), float(l_)


def eval_windows(tokens: npt.NDArray[Any], n_ctx: int, n: int, seed: int = 0) -> torch.Tensor:
    """n random windows of n_ctx tokens from a token stream (deterministic from seed)."""
    if tokens.shape[0] < n_ctx + 1:
        raise InputError(f"the evaluation stream has {tokens.shape[0]} tokens, fewer than {n_ctx}")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, tokens.shape[0] - n_ctx, size=n)
    idx = starts[:, None] + np.arange(n_ctx)[None, :]
    return torch.from_numpy(np.asarray(tokens[idx], dtype=np.int64))


def phase_curve(
    recipe: str,
    run_dir: Path,
    tokens: npt.NDArray[Any],
    n_windows: int = 128,
    probe_seqs: int = 8,
    progress: Progress | None = None,
) -> PhaseCurve:
    """ICL, induction and previous-token scores of every snapshot of one run."""
    snaps = require_snapshots(recipe, run_dir)
    points = []
    early = late = (0, 0)
    windows: torch.Tensor | None = None
    for i, (step, path) in enumerate(snaps):
        if progress is not None:
            progress(recipe, i, len(snaps))
        model = load_model(path)
        n_ctx = model.cfg.n_ctx
        if windows is None:
            if n_ctx < 8:
                raise InputError(f"{path} reads only {n_ctx} tokens; the ICL score needs >= 8")
            early, late = context_windows(n_ctx)
            windows = eval_windows(tokens, n_ctx, n_windows)
        if int(windows.max()) >= model.cfg.d_vocab:
            raise InputError(
                f"evaluation tokens go up to id {int(windows.max())} but {path} has a vocabulary "
                f"of {model.cfg.d_vocab}; evaluate on the recipe's own token dataset"
            )
        e, l_ = icl_losses(model, windows, early, late)
        hs = head_scores(model, n_seqs=probe_seqs)
        ih, iv = hs.best("induction")
        ph, pv = hs.best("previous_token")
        points.append(
            PhasePoint(step, _tokens_of(path, step, model), l_ - e, e, l_, iv, ih, pv, ph)
        )
    if progress is not None:
        progress(recipe, len(snaps), len(snaps))
    return PhaseCurve(recipe, str(run_dir), points, early, late)


def _tokens_of(path: Path, step: int, model: HookedTransformer) -> int:
    try:
        prov = read_manifest(path, MODEL_KIND).provenance
    except ArtifactError:
        prov = {}
    tokens = prov.get("tokens")
    return int(tokens) if isinstance(tokens, int) else step * model.cfg.n_ctx


def load_eval_tokens(path: Path) -> npt.NDArray[Any]:
    """A token stream from a token dataset directory (its val split) or a .npy file of ids."""
    if path.is_dir():
        from lenscope.data import TokenDataset

        ds = TokenDataset.open(path)
        return np.asarray(ds.val if len(ds.val) > 0 else ds.train)
    if path.suffix == ".npy" and path.is_file():
        arr = np.load(path, allow_pickle=False)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise InputError(f"{path} must hold a 1-D array of integer token ids")
        return np.asarray(arr)
    raise InputError(f"{path} is neither a token dataset directory nor a .npy file of token ids")


def recipe_tokens(recipe: str) -> npt.NDArray[Any]:
    """The validation token stream of a recipe's dataset (built on first use, then cached)."""
    from lenscope.data import prepare_data
    from lenscope.train.recipes import get_recipe

    r = get_recipe(recipe)
    data = prepare_data(r.corpus, r.vocab_size, r.limit_bytes, progress=False, log=lambda _m: None)
    val = np.asarray(data.val)
    return val if val.shape[0] > r.n_ctx * 4 else np.asarray(data.train)


CURVES_KIND = "phase_curves"
CURVES_SCHEMA = 1


def shipped_curves_dir() -> Path:
    """Curves measured on the snapshots of the runs that trained the shipped models."""
    from lenscope.model.load import assets_dir

    return assets_dir() / "curves" / "phase-change"


def save_curves(curves: Sequence[PhaseCurve], dest: Path) -> Path:
    """Write curves as an artifact (manifest only: the numbers are small)."""
    from lenscope.artifacts import Manifest, writing_artifact

    prov = {"runs": {c.recipe: c.run_dir for c in curves}, "how": "lenscope circuits induction"}
    man = Manifest(
        kind=CURVES_KIND,
        schema_version=CURVES_SCHEMA,
        provenance=prov,
        data={"curves": [c.to_json() for c in curves]},
    )
    with writing_artifact(dest, man):
        pass
    return dest


def load_curves(path: Path, recipes: Sequence[str]) -> list[PhaseCurve]:
    """Curves of `recipes` from a `save_curves` artifact (validated)."""
    data = read_manifest(path, CURVES_KIND, CURVES_SCHEMA).data
    out = []
    try:
        for c in data["curves"]:
            if c["recipe"] not in recipes:
                continue
            points = [PhasePoint(**p) for p in c["points"]]
            early = (int(c["early_positions"][0]), int(c["early_positions"][1]))
            late = (int(c["late_positions"][0]), int(c["late_positions"][1]))
            out.append(PhaseCurve(c["recipe"], c["run_dir"], points, early, late))
    except (KeyError, TypeError, IndexError, ValueError) as e:
        raise ArtifactError(f"{path} holds malformed phase-change curves ({e!r})") from None
    return out


def phase_change(
    recipes: Sequence[str] = ("attn1", "attn2"),
    runs_root: Path | None = None,
    tokens: npt.NDArray[Any] | None = None,
    n_windows: int = 128,
    progress: Progress | None = None,
    shipped: bool = False,
) -> tuple[list[PhaseCurve], list[str]]:
    """Curves for every recipe with snapshots, and a note for each recipe without any.

    With `shipped`, recipes without local snapshots fall back to the curves shipped in
    `assets/curves/phase-change` (measured on the runs that trained the shipped models).
    Raises `SnapshotsMissingError` when no recipe has a curve.
    """
    if shipped:
        curves: list[PhaseCurve] = []
        missing: list[str] = []
        local = [r for r in recipes if list_snapshots(run_dir_of(r, runs_root))]
        if local:
            curves, missing = phase_change(local, runs_root, tokens, n_windows, progress)
        rest = [r for r in recipes if r not in local]
        if rest and shipped_curves_dir().is_dir():
            found = load_curves(shipped_curves_dir(), rest)
            curves += found
            if found:
                missing.append(
                    f"{', '.join(c.recipe for c in found)}: no local snapshots, so these are the "
                    f"curves shipped in {shipped_curves_dir()} (measured on the runs that trained "
                    "the shipped models); `lenscope train --recipe NAME` measures your own"
                )
            rest = [r for r in rest if r not in {c.recipe for c in found}]
        if curves:
            missing += [
                f"no training snapshots for {r}; run `lenscope train --recipe {r}`" for r in rest
            ]
            return sorted(curves, key=lambda c: list(recipes).index(c.recipe)), missing
        return phase_change(rest, runs_root, tokens, n_windows, progress)
    curves, missing = [], []
    for recipe in recipes:
        rd = run_dir_of(recipe, runs_root)
        try:
            require_snapshots(recipe, rd)
        except SnapshotsMissingError as e:
            missing.append(str(e))
            continue
        toks = tokens if tokens is not None else recipe_tokens(recipe)
        curves.append(phase_curve(recipe, rd, toks, n_windows, progress=progress))
    if not curves:
        if len(missing) == 1:
            raise SnapshotsMissingError(missing[0])
        root = runs_root or lenscope_home() / "runs"
        cmds = " and ".join(f"`lenscope train --recipe {r}`" for r in recipes)
        raise SnapshotsMissingError(
            f"no training snapshots for {', '.join(recipes)} under {root}; run {cmds} first "
            "(each keeps log-spaced snapshots)"
        )
    return curves, missing
