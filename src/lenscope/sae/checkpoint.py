"""Training checkpoints that survive `kill -9`: two slots, each written atomically.

A checkpoint holds the parameters (an SAE's, or a transcoder stack's), buffers, Adam's moments and step, the dead-latent counters and the
configs; the data position is implied by the step. Saves alternate between `ckpt-a` and `ckpt-b`
(the slot not holding the newest checkpoint is replaced, via a temporary directory and a rename),
so a kill at any instant leaves at least one complete checkpoint. Non-finite parameters or moments
are refused: a diverged run never replaces a good checkpoint. Resuming takes the newest slot that
reads back cleanly.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from lenscope.artifacts import Manifest, read_manifest, writing_artifact
from lenscope.errors import ArtifactError, CheckpointError
from lenscope.sae.optim import Adam
from lenscope.sae.step import TrainState

KIND = "sae-checkpoint"
SCHEMA = 1
SLOTS = ("ckpt-a", "ckpt-b")
STATE = "state.safetensors"


@dataclass
class Checkpoint:
    path: Path
    step: int
    data: dict[str, Any]
    tensors: dict[str, Tensor]


def read_checkpoint(path: Path) -> Checkpoint:
    """Read one slot; `CheckpointError` if it is incomplete or corrupt."""
    try:
        m = read_manifest(path, KIND, SCHEMA)
        tensors = load_file(str(path / STATE))
    except (ArtifactError, SafetensorError, OSError) as e:
        raise CheckpointError(f"{path} is not a readable checkpoint: {e}") from None
    step = m.data.get("step")
    if not isinstance(step, int):
        raise CheckpointError(f"{path}: manifest has no integer step")
    return Checkpoint(path, step, m.data, tensors)


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The newest readable checkpoint in `run_dir`, or None."""
    found = []
    for slot in SLOTS:
        if (run_dir / slot).is_dir():
            try:
                found.append(read_checkpoint(run_dir / slot))
            except CheckpointError:
                continue
    return max(found, key=lambda c: c.step) if found else None


def clean_stale(run_dir: Path) -> None:
    """Remove temporary directories that a killed writer left behind."""
    for slot in SLOTS:
        for p in run_dir.glob(f".{slot}.*"):
            shutil.rmtree(p, ignore_errors=True)


def save_checkpoint(
    run_dir: Path,
    sae: nn.Module,
    opt: Adam,
    state: TrainState,
    data: dict[str, Any],
) -> Path:
    """Write the state after `state.step` steps into the older slot; return its path."""
    tensors = {f"param.{n}": p.detach().cpu().contiguous() for n, p in sae.named_parameters()}
    for n, b in sae.named_buffers():  # an SAE's threshold; a transcoder stack's
        tensors[f"buffer.{n}"] = b.detach().cpu().contiguous()
    names = [n for n, _ in sae.named_parameters()]
    for name, t in opt.state_tensors(names).items():
        tensors[name] = t.detach().cpu().contiguous()
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(
                f"training diverged by step {state.step}: {name} is not finite; the last good "
                "checkpoint is kept; lower the learning rate (--lr) and resume"
            )
    tensors["state.tokens_since_fired"] = state.tokens_since_fired.cpu().contiguous()
    newest = latest_checkpoint(run_dir)
    slot = SLOTS[0] if newest is None or newest.path.name == SLOTS[1] else SLOTS[1]
    man = Manifest(
        kind=KIND,
        schema_version=SCHEMA,
        data=data | {"step": state.step, "mse_scale": state.mse_scale},
    )
    with writing_artifact(run_dir / slot, man) as tmp:
        save_file(tensors, str(tmp / STATE))
    return run_dir / slot


def restore(ck: Checkpoint, sae: nn.Module, opt: Adam, state: TrainState) -> None:
    """Load a checkpoint's parameters, Adam state and counters in place."""
    t = ck.tensors
    try:
        with torch.no_grad():
            for n, p in sae.named_parameters():
                p.copy_(t[f"param.{n}"])
            for n, b in sae.named_buffers():
                b.copy_(t[f"buffer.{n}"])
            opt.load_state_tensors([n for n, _ in sae.named_parameters()], t)
        device = next(sae.parameters()).device
        state.tokens_since_fired = t["state.tokens_since_fired"].to(device, copy=True)
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"{ck.path} does not match this SAE: {e}") from None
    state.step = ck.step
    state.mse_scale = float(ck.data["mse_scale"])
