"""`train_transcoders`: train a model's transcoders (every chosen layer jointly, per-layer or
cross-layer) on the SAE trainer's machinery.

Each step's batch holds, for the same tokens, every layer's MLP input
(`blocks.{l}.ln2.hook_normalized`) and MLP output (`blocks.{l}.hook_mlp_out`), captured in one
forward pass and shuffled together (`LiveSource` with several hooks, `BatchStream`). The loop is
the SAE trainer's: the same Adam, the same two-slot checkpoints that survive `kill -9` (a run
resumes exactly), the same progress bar, the same data parallelism under `torchrun` (ranks split
each global batch and sum gradients; rank 0 writes). The result is a transcoder-set artifact.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from lenscope.artifacts import lenscope_home
from lenscope.data.stream import TokenArray
from lenscope.errors import CheckpointError, InputError
from lenscope.jsonable import JsonResult
from lenscope.model import HookedTransformer, fingerprint
from lenscope.model.capture import check_hook, hook_width
from lenscope.sae.buffer import ActivationSource, BatchStream, LiveSource
from lenscope.sae.checkpoint import clean_stale, latest_checkpoint, restore, save_checkpoint
from lenscope.sae.config import TrainConfig
from lenscope.sae.distributed import Comm, comm_from_env
from lenscope.sae.optim import Adam
from lenscope.sae.progress import TrainProgress
from lenscope.sae.step import TrainState
from lenscope.sae.train import Log
from lenscope.sae.transcoder_set import TranscoderSet, save_transcoder_set
from lenscope.sae.transcoder_stack import TranscoderSetConfig, TranscoderStack
from lenscope.sae.transcoder_step import SparsityConfig, TranscoderStepMetrics, train_step


@dataclass
class TranscoderTrainResult(JsonResult):
    path: Path | None  # the transcoder-set artifact (rank 0), None when stopped early
    run_dir: Path
    steps: int
    tokens: int
    nmse: float  # last batch, all layers
    nmse_layers: list[float]
    l0: float
    dead_fraction: float
    dead_window_tokens: int
    lr: float
    seconds: float
    resumed_from: int | None
    history: list[dict[str, float]] = field(default_factory=list)
    transcoders: TranscoderSet | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "transcoders"}


def transcoder_config_for(
    model: HookedTransformer,
    *,
    layers: list[int] | None = None,
    activation: str = "batchtopk",
    k: int | None = 32,
    d_sae: int | None = None,
    expansion: int = 8,
    skip: bool = False,
    cross_layer: bool = False,
) -> TranscoderSetConfig:
    """A set config for `model`'s MLPs (all layers by default; widths measured)."""
    n = model.cfg.n_layers
    if getattr(model.cfg, "attn_only", False):
        raise InputError(f"{model.cfg.name} is attention-only: it has no MLPs to transcode")
    chosen = list(range(n)) if layers is None else sorted(set(layers))
    bad = [x for x in chosen if not 0 <= x < n]
    if bad:
        raise InputError(f"{model.cfg.name} has layers 0..{n - 1}; no layer {bad[0]}")
    probe = TranscoderSetConfig(1, 1, 1, (0,), activation="relu")
    h_in, h_out = f"blocks.{chosen[0]}.{probe.hook_in}", f"blocks.{chosen[0]}.{probe.hook_out}"
    check_hook(model, h_in)
    check_hook(model, h_out)
    d_in, d_out = hook_width(model.cfg, h_in), hook_width(model.cfg, h_out)
    return TranscoderSetConfig(
        d_in=d_in,
        d_sae=d_sae or d_in * expansion,
        d_out=d_out,
        layers=tuple(chosen),
        activation=activation,
        k=k,
        skip=skip,
        cross_layer=cross_layer,
        model_name=model.cfg.name,
        model_fingerprint=fingerprint(model),
    )


def default_name(cfg: TranscoderSetConfig) -> str:
    kind = "clt" if cfg.cross_layer else "tc"
    k = f"-k{cfg.k}" if cfg.k is not None else ""
    skip = "-skip" if cfg.skip else ""
    n = len(cfg.layers)
    layers = "" if list(cfg.layers) == list(range(n)) else "-L" + "_".join(map(str, cfg.layers))
    return f"{cfg.model_name or 'model'}-{kind}{layers}-{cfg.activation}{k}{skip}-n{cfg.d_sae}"


def _ident(cfg: TranscoderSetConfig, tc: TrainConfig, sp: SparsityConfig) -> dict[str, Any]:
    return {
        "transcoder_config": cfg.to_dict() | {"layers": list(cfg.layers)},
        "train_config": tc.to_dict() | {"ckpt_every": 0},
        "sparsity": sp.to_dict(),
    }


def train_transcoders(
    cfg: TranscoderSetConfig,
    tc: TrainConfig,
    *,
    model: HookedTransformer | None = None,
    tokens: TokenArray | None = None,
    data: list[str] | None = None,
    source: ActivationSource | None = None,
    sparsity: SparsityConfig | None = None,
    out: Path | None = None,
    run_dir: Path | None = None,
    fresh: bool = False,
    stop_after: int | None = None,
    half: bool = False,
    save: bool = True,
    progress: bool = True,
    comm: Comm | None = None,
    log: Log = print,
    provenance: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> TranscoderTrainResult:
    """Train a transcoder set; resume from `run_dir` when it holds a checkpoint of the same
    configuration. Rows of `source` (default: live forward passes of `model` over `tokens`) are
    every layer's input then every layer's output, concatenated. `stop_after` stops after that
    many steps of this call (an interruption, for tests) without writing the artifact;
    `provenance` adds notes (e.g. the data) to the artifact's provenance; `device` is where
    the transcoders train (the model runs wherever it is)."""
    from lenscope.device import resolve_device

    dev = resolve_device(device)
    comm = comm or comm_from_env(str(dev))
    sp = sparsity or SparsityConfig()
    if cfg.activation == "batchtopk" and cfg.k is None:
        raise InputError("training a BatchTopK transcoder needs k (active latents per token)")
    L = cfg.n_layers
    width = L * (cfg.d_in + cfg.d_out)
    if source is None:
        if model is None:
            raise InputError("give a model (or an activation source) to train on")
        if tokens is None:
            from lenscope.data import token_stream

            say = log if comm.is_main else (lambda _m: None)
            tokens = token_stream(model, data, progress=progress and comm.is_main, log=say).train
        source = LiveSource(
            model,
            cfg.hooks_in() + cfg.hooks_out(),
            tokens,
            width,
            ctx=tc.ctx or model.cfg.n_ctx,
            buffer_tokens=tc.buffer_tokens,
            forward_batch=tc.forward_batch,
            seed=tc.seed,
            comm=comm,
        )
    if source.d_in != width:
        raise InputError(
            f"the activation rows are {source.d_in}-dimensional, but {L} layers of inputs "
            f"({cfg.d_in}) and outputs ({cfg.d_out}) make {width}"
        )
    name = default_name(cfg)
    run_dir = run_dir or lenscope_home() / "runs" / f"transcoders-{name}"
    out = out or lenscope_home() / "transcoders" / name
    stream = BatchStream(source, tc.batch_size, tc.seed, comm)
    stack = TranscoderStack(cfg, seed=tc.seed).to(dev)
    lr = tc.resolved_lr(cfg.d_sae)
    opt = Adam(stack.parameters(), lr=lr, betas=(tc.beta1, tc.beta2), eps=tc.adam_eps)
    state = TrainState(tokens_since_fired=torch.zeros(L, cfg.d_sae, dtype=torch.long))
    ident = _ident(cfg, tc, sp)
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
        restore(ck, stack, opt, state)
        mse_scale = torch.tensor(ck.data["mse_scales"], dtype=torch.float32, device=dev)
        resumed = state.step
        if comm.is_main:
            log(f"resuming from step {state.step}/{tc.steps} ({ck.path})")
    else:
        mse_scale = _init_from_data(stack, stream.shuffled(0).to(dev, torch.float32), cfg)
    dead_window = tc.resolved_dead_tokens()
    bar = TrainProgress(
        tc.steps, state.step, tc.batch_size, enabled=progress and comm.is_main, label="transcoders"
    )
    history: list[dict[str, float]] = []
    last: TranscoderStepMetrics | None = None
    t0 = time.time()
    done_here = 0
    split = L * cfg.d_in
    try:
        while state.step < tc.steps:
            if stop_after is not None and done_here >= stop_after:
                break
            rows = stream.batch(state.step).to(dev, torch.float32)
            x = rows[:, :split].reshape(-1, L, cfg.d_in)
            y = rows[:, split:].reshape(-1, L, cfg.d_out)
            last = train_step(stack, opt, x, y, tc, sp, state, mse_scale, comm, lr)
            done_here += 1
            if not math.isfinite(last.loss):
                raise CheckpointError(
                    f"training diverged at step {state.step} (loss is not finite); the last good "
                    "checkpoint is kept; lower the learning rate (--lr)"
                )
            bar.update(state.step, last, state.tokens_since_fired, dead_window)
            if state.step % max(1, tc.steps // 100) == 0 or state.step == tc.steps:
                history.append(_record(state.step, tc.batch_size, last))
            if comm.is_main and (state.step % tc.ckpt_every == 0 or state.step == tc.steps):
                ck_data = ident | {
                    "last": _record(state.step, tc.batch_size, last),
                    "mse_scales": mse_scale.tolist(),
                }
                save_checkpoint(run_dir, stack, opt, state, ck_data)
    finally:
        bar.close()
    comm.barrier()
    dead_now = float((state.tokens_since_fired > dead_window).float().mean())
    prev = ck.data.get("last", {}) if ck is not None else {}
    nmse = last.nmse if last else float(prev.get("nmse", float("nan")))
    l0 = last.l0 if last else float(prev.get("l0", float("nan")))
    layers_nmse = last.nmse_layers if last else []
    ts = _as_set(stack.cpu(), name)
    path: Path | None = None
    if save and state.step >= tc.steps and comm.is_main:
        prov = {
            "trainer": "lenscope.sae.train_transcoders",
            "train_config": tc.to_dict(),
            "sparsity": sp.to_dict(),
            "lr": lr,
            "steps": state.step,
            "tokens": state.step * tc.batch_size,
            "processes": comm.world,
            "model_fingerprint": cfg.model_fingerprint,
        } | (provenance or {})
        ts.metrics = {
            k: v
            for k, v in {
                "train_nmse": nmse,
                "train_l0": l0,
                "train_dead_fraction": dead_now,
            }.items()
            if math.isfinite(v)
        }
        path = save_transcoder_set(ts, out, provenance=prov, half=half)
        ts.path = path
        log(f"saved the transcoder set to {path}")
    comm.barrier()
    return TranscoderTrainResult(
        path=path,
        run_dir=run_dir,
        steps=state.step,
        tokens=state.step * tc.batch_size,
        nmse=nmse,
        nmse_layers=layers_nmse,
        l0=l0,
        dead_fraction=dead_now,
        dead_window_tokens=dead_window,
        lr=lr,
        seconds=time.time() - t0,
        resumed_from=resumed,
        history=history,
        transcoders=ts,
    )


def _as_set(stack: TranscoderStack, name: str) -> TranscoderSet:
    if stack.cfg.cross_layer:
        return TranscoderSet(name, stack.cfg, clt=stack.clt())
    return TranscoderSet(name, stack.cfg, transcoders=stack.transcoders())


@torch.no_grad()
def _init_from_data(
    stack: TranscoderStack, sample: torch.Tensor, cfg: TranscoderSetConfig
) -> torch.Tensor:
    """b_dec = the outputs' mean; returns each layer's MSE scale 1 / per-dim variance."""
    L = cfg.n_layers
    y = sample[:, L * cfg.d_in :].reshape(-1, L, cfg.d_out).double()
    mean = y.mean(0)
    var = ((y - mean) ** 2).mean(dim=(0, 2))
    if not bool((var > 0).all()):
        bad = [cfg.layers[i] for i in range(L) if not var[i] > 0]
        raise InputError(f"the MLP outputs of layer(s) {bad} have zero variance")
    stack.b_dec.copy_(mean.to(stack.b_dec.dtype))
    return (1.0 / var).float()


def _record(step: int, batch: int, m: TranscoderStepMetrics) -> dict[str, float]:
    rec = {
        "step": step,
        "tokens": step * batch,
        "loss": m.loss,
        "nmse": m.nmse,
        "l0": m.l0,
        "auxk_loss": m.auxk_loss,
        "dead_fraction": m.dead_fraction,
    }
    return {k: v for k, v in rec.items() if math.isfinite(v)}
