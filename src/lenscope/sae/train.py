"""`train_sae`: train an SAE on live (or cached) activations, resumably, on 1 or N processes.

The same call runs under `torchrun --nproc_per_node N`: ranks split each global batch, sum their
gradients, and only rank 0 writes checkpoints and the artifact. A run directory holds two
checkpoint slots; an existing checkpoint with the same configuration is resumed exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from lenscope.artifacts import lenscope_home
from lenscope.data.stream import TokenArray
from lenscope.device import resolve_device
from lenscope.errors import CheckpointError, InputError
from lenscope.jsonable import JsonResult
from lenscope.model import HookedTransformer, fingerprint
from lenscope.model.capture import check_hook, hook_width
from lenscope.sae.architectures import get_architecture
from lenscope.sae.buffer import ActivationSource, BatchStream, LiveSource
from lenscope.sae.checkpoint import clean_stale, latest_checkpoint, restore, save_checkpoint
from lenscope.sae.config import SAEConfig, TrainConfig
from lenscope.sae.distributed import Comm, comm_from_env
from lenscope.sae.io import save_sae
from lenscope.sae.model import SparseAutoencoder
from lenscope.sae.optim import Adam
from lenscope.sae.progress import TrainProgress
from lenscope.sae.step import StepMetrics, TrainState, train_step

Log = Callable[[str], None]


@dataclass
class SAETrainResult(JsonResult):
    path: Path | None  # the SAE artifact (rank 0), None when stopped early
    run_dir: Path
    steps: int
    tokens: int
    nmse: float
    l0: float
    dead_fraction: float
    dead_window_tokens: int
    lr: float
    seconds: float
    resumed_from: int | None
    history: list[dict[str, float]] = field(default_factory=list)
    sae: SparseAutoencoder | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sae"}


def default_name(model_name: str, cfg: SAEConfig) -> str:
    hook = cfg.hook_name.replace("blocks.", "L").replace("hook_", "").replace(".", "-")
    k = f"-k{cfg.k}" if cfg.k is not None and cfg.architecture != "relu" else ""
    return f"{model_name}-{hook}-{cfg.architecture}{k}-n{cfg.d_sae}"


def make_optimizer(sae: SparseAutoencoder, cfg: TrainConfig, lr: float) -> Adam:
    return Adam(sae.parameters(), lr=lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps)


def _config_data(sae_cfg: SAEConfig, cfg: TrainConfig) -> dict[str, Any]:
    return {"sae_config": sae_cfg.to_dict(), "train_config": cfg.to_dict() | {"ckpt_every": 0}}


def train_sae(
    sae_cfg: SAEConfig,
    cfg: TrainConfig,
    *,
    model: HookedTransformer | None = None,
    tokens: TokenArray | None = None,
    data: list[str] | None = None,
    source: ActivationSource | None = None,
    out: Path | None = None,
    run_dir: Path | None = None,
    fresh: bool = False,
    stop_after: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
    half: bool = False,
    save: bool = True,
    progress: bool = True,
    comm: Comm | None = None,
    log: Log = print,
) -> SAETrainResult:
    """Train; resume from `run_dir` when it holds a checkpoint of the same configuration.

    Activations come from `source`, else from forward passes of `model` at sae_cfg.hook_name over
    `tokens` (default: `lenscope.data.token_stream(model, data)`). `stop_after` stops after that
    many steps of this call (an interruption, for tests) without writing the artifact;
    `save=False` keeps the trained SAE only in the result (`result.sae`). `device`: where the
    SAE trains (anything `lenscope.device.resolve_device` takes); default the model's device,
    the CPU without a model.
    """
    comm = comm or comm_from_env()
    if not get_architecture(sae_cfg.architecture).trainable:
        raise InputError(
            f"{sae_cfg.architecture} SAEs cannot be trained here; use topk, batchtopk or relu"
        )
    if source is None:
        if model is None:
            raise InputError("give a model (or a cached activation source) to train on")
        check_hook(model, sae_cfg.hook_name)
        width = hook_width(model.cfg, sae_cfg.hook_name)
        if tokens is None:
            from lenscope.data import token_stream

            main = comm.is_main
            say = log if main else (lambda _m: None)
            tokens = token_stream(model, data, progress=progress and main, log=say).train
        source = LiveSource(
            model,
            sae_cfg.hook_name,
            tokens,
            width,
            ctx=cfg.ctx or model.cfg.n_ctx,
            buffer_tokens=cfg.buffer_tokens,
            forward_batch=cfg.forward_batch,
            seed=cfg.seed,
            comm=comm,
        )
    if source.d_in != sae_cfg.d_in:
        raise InputError(
            f"the SAE reads d_in = {sae_cfg.d_in} but the activations at {sae_cfg.hook_name or 'the source'} "
            f"are {source.d_in}-dimensional; set d_in to {source.d_in}"
        )
    name = default_name(model.cfg.name if model is not None else "acts", sae_cfg)
    run_dir = run_dir or lenscope_home() / "runs" / f"sae-{name}"
    out = out or lenscope_home() / "saes" / name
    stream = BatchStream(source, cfg.batch_size, cfg.seed, comm)
    dev = resolve_device(device) if device is not None else (model.device if model else None)
    dev = dev or torch.device("cpu")
    sae = SparseAutoencoder(sae_cfg, dtype=dtype, seed=cfg.seed, device=dev)
    lr = cfg.resolved_lr(sae_cfg.d_sae)
    opt = make_optimizer(sae, cfg, lr)
    state = TrainState(tokens_since_fired=torch.zeros(sae_cfg.d_sae, dtype=torch.long, device=dev))
    ident = _config_data(sae_cfg, cfg)
    resumed: int | None = None
    if comm.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        clean_stale(run_dir)
    ck = None if fresh else latest_checkpoint(run_dir)
    if ck is not None:
        if {k: ck.data.get(k) for k in ident} != ident:
            raise CheckpointError(
                f"{run_dir} holds a checkpoint of a different configuration; pass --fresh to "
                "start over or use another run directory"
            )
        restore(ck, sae, opt, state)
        resumed = state.step
        if comm.is_main:
            log(f"resuming from step {state.step}/{cfg.steps} ({ck.path})")
    else:
        sample = stream.shuffled(0).to(dev, dtype)
        sae.init_from_data(sample)
        xn = sae.normalize(sample)[0]
        var = float(((xn - xn.mean(0)) ** 2).mean())
        if not var > 0:
            raise InputError(f"the activations at {sae_cfg.hook_name} have zero variance")
        state.mse_scale = 1.0 / var
    dead_window = cfg.resolved_dead_tokens()
    bar = TrainProgress(cfg.steps, state.step, cfg.batch_size, enabled=progress and comm.is_main)
    history: list[dict[str, float]] = []
    last: StepMetrics | None = None
    t0 = time.time()
    done_here = 0
    try:
        while state.step < cfg.steps:
            if stop_after is not None and done_here >= stop_after:
                break
            x = stream.batch(state.step).to(dev, dtype)
            last = train_step(sae, opt, x, cfg, state, comm, lr)
            done_here += 1
            if not math.isfinite(last.loss):
                raise CheckpointError(
                    f"training diverged at step {state.step} (loss is not finite); the last good "
                    "checkpoint is kept; lower the learning rate (--lr)"
                )
            bar.update(state.step, last, state.tokens_since_fired, dead_window)
            if state.step % max(1, cfg.steps // 100) == 0 or state.step == cfg.steps:
                history.append(_record(state.step, cfg.batch_size, last))
            if comm.is_main and (state.step % cfg.ckpt_every == 0 or state.step == cfg.steps):
                save_checkpoint(
                    run_dir,
                    sae,
                    opt,
                    state,
                    ident | {"last": _record(state.step, cfg.batch_size, last)},
                )
    finally:
        bar.close()
    comm.barrier()
    dead_now = float((state.tokens_since_fired > dead_window).float().mean())
    seconds = time.time() - t0
    path: Path | None = None
    prev = ck.data.get("last", {}) if ck is not None else {}
    nmse = last.nmse if last else float(prev.get("nmse", float("nan")))
    l0 = last.l0 if last else float(prev.get("l0", float("nan")))
    if save and state.step >= cfg.steps and comm.is_main:
        prov = {
            "trainer": "lenscope.sae.train_sae",
            "train_config": cfg.to_dict(),
            "lr": lr,
            "steps": state.step,
            "tokens": state.step * cfg.batch_size,
            "processes": comm.world,
            "model_fingerprint": sae_cfg.model_fingerprint,
        }
        metrics: dict[str, Any] = {
            "train_nmse": nmse,
            "train_l0": l0,
            "dead_fraction": dead_now,
            "dead_window_tokens": dead_window,
        }
        metrics = {k: v for k, v in metrics.items() if not isinstance(v, float) or math.isfinite(v)}
        path = save_sae(sae.eval(), out, provenance=prov, metrics=metrics, half=half)
        log(f"saved the SAE to {path}")
    comm.barrier()
    return SAETrainResult(
        path=path,
        run_dir=run_dir,
        steps=state.step,
        tokens=state.step * cfg.batch_size,
        nmse=nmse,
        l0=l0,
        dead_fraction=dead_now,
        dead_window_tokens=dead_window,
        lr=lr,
        seconds=seconds,
        resumed_from=resumed,
        history=history,
        sae=sae,
    )


def _record(step: int, batch: int, m: StepMetrics) -> dict[str, float]:
    rec = {
        "step": step,
        "tokens": step * batch,
        "loss": m.loss,
        "nmse": m.nmse,
        "l0": m.l0,
        "auxk_loss": m.auxk_loss,
        "dead_fraction": m.dead_fraction,
    }
    return {k: v for k, v in rec.items() if math.isfinite(v)}  # JSON has no NaN


def sae_config_for(
    model: HookedTransformer,
    hook: str,
    *,
    architecture: str = "topk",
    k: int | None = 32,
    d_sae: int | None = None,
    expansion: int = 16,
    normalize: bool = False,
) -> SAEConfig:
    """An SAEConfig for `hook` of `model` (d_in measured, fingerprint recorded)."""
    check_hook(model, hook)
    d_in = hook_width(model.cfg, hook)
    return SAEConfig(
        d_in=d_in,
        d_sae=d_sae or d_in * expansion,
        architecture=architecture,
        k=k if architecture in ("topk", "batchtopk") else None,
        normalize=normalize,
        hook_name=hook,
        model_name=model.cfg.name,
        model_fingerprint=fingerprint(model),
    )
