"""The training loop: deterministic, checkpointed, exactly resumable after `kill -9`.

Layout of a run directory (default `LENSCOPE_HOME/runs/<recipe>`):
  checkpoint/      latest state (model + AdamW state + step), replaced atomically
  snapshots/       log-spaced model artifacts kept for training-dynamics plots
  metrics.jsonl    one JSON line per evaluation
The final model is written as a model artifact (default `LENSCOPE_HOME/models/<recipe>`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from lenscope.artifacts import Manifest, lenscope_home
from lenscope.data import TokenDataset, iter_eval_batches, prepare_data, sample_batch
from lenscope.device import resolve_device
from lenscope.errors import ArtifactError
from lenscope.jsonable import JsonResult
from lenscope.model.config import ModelConfig
from lenscope.model.load import save_model
from lenscope.model.tokenizer import Tokenizer
from lenscope.model.transformer import HookedTransformer
from lenscope.nodes import head_node_id
from lenscope.train.probes import induction_probe
from lenscope.train.recipes import Recipe

Log = Callable[[str], None]


@dataclass
class TrainResult(JsonResult):
    model_path: Path
    run_dir: Path
    steps: int
    tokens: int
    val_loss: float
    eval: dict[str, Any]
    seconds: float


def build_model(recipe: Recipe, tokenizer: Tokenizer, vocab: int) -> HookedTransformer:
    cfg = ModelConfig(
        n_layers=recipe.n_layers,
        d_model=recipe.d_model,
        n_heads=recipe.n_heads,
        d_vocab=vocab,
        n_ctx=recipe.n_ctx,
        d_mlp=recipe.d_mlp,
        attn_only=recipe.attn_only,
        normalization=recipe.normalization,  # type: ignore[arg-type]
        tie_embeddings=recipe.tie_embeddings,
        architecture="lenscope",
        name=recipe.name,
    )
    torch.manual_seed(recipe.seed)
    model = HookedTransformer(cfg, tokenizer)
    from lenscope.model.layers import init_weights

    init_weights(model, cfg, seed=recipe.seed)
    if recipe.sinusoidal_pos_scale > 0 and model.W_pos is not None:
        with torch.no_grad():
            model.W_pos.copy_(sinusoids(cfg.n_ctx, cfg.d_model) * recipe.sinusoidal_pos_scale)
    return model


def sinusoids(n: int, d: int) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(0, d, 2, dtype=torch.float64)
    ang = pos / (10000 ** (i / d))
    out = torch.zeros(n, d, dtype=torch.float64)
    out[:, 0::2], out[:, 1::2] = ang.sin(), ang.cos()
    return out.float()


def token_counts(data: TokenDataset) -> list[int]:
    """How often each token occurs in the training split (probes exclude the rarest/commonest)."""
    counts = np.bincount(np.asarray(data.train), minlength=data.vocab_size)
    return [int(c) for c in counts[: data.vocab_size]]


def lr_at(recipe: Recipe, step: int) -> float:
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    if recipe.min_lr_ratio >= 1.0:
        return recipe.lr
    frac = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    return recipe.lr * (recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * cos)


def snapshot_steps(recipe: Recipe) -> set[int]:
    if recipe.snapshots <= 0:
        return set()
    pts = np.unique(np.geomspace(10, recipe.steps, recipe.snapshots).round().astype(int))
    return {int(s) for s in pts} | {0}


def _optimizer(model: HookedTransformer, recipe: Recipe) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": recipe.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=recipe.lr,
        betas=recipe.betas,
    )


def _save_checkpoint(
    d: Path, model: HookedTransformer, opt: torch.optim.AdamW, step: int, recipe: Recipe
) -> None:
    tensors: dict[str, torch.Tensor] = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        tensors[f"model.{n}"] = p.detach().cpu().clone()
    for param, st in opt.state.items():
        n = names[id(param)]
        for k, v in st.items():
            tensors[f"opt.{n}.{k}"] = (
                torch.as_tensor(v, device="cpu").detach().clone().reshape(-1)
                if k == "step"
                else v.detach().cpu().clone()
            )
    tmp = d.with_name(d.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(tensors, str(tmp / "state.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "recipe": recipe.to_dict()}))
    old = d.with_name(d.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if d.exists():
        os.replace(d, old)
    os.replace(tmp, d)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(
    d: Path, model: HookedTransformer, opt: torch.optim.AdamW, recipe: Recipe
) -> int:
    meta = json.loads((d / "state.json").read_text())
    if _resume_key(meta["recipe"]) != _resume_key(json.loads(json.dumps(recipe.to_dict()))):
        raise ArtifactError(
            f"the checkpoint in {d} was made by different recipe settings; "
            "pass --fresh to start over or use another --run-dir"
        )
    t = load_file(str(d / "state.safetensors"))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(t[f"model.{n}"])
    for n, p in params.items():
        st = {k.removeprefix(f"opt.{n}."): v for k, v in t.items() if k.startswith(f"opt.{n}.")}
        if st:
            # moments beside their parameter; the step count stays a CPU scalar (as AdamW keeps it)
            st = {k: v.reshape(()) if k == "step" else v.to(p.device) for k, v in st.items()}
            opt.state[p] = st
    return int(meta["step"])


# Settings that may change between a run and its resumption without changing what it computes
# up to the resumed step (a constant-lr run can also be extended with more steps).
_RESUMABLE = {"steps", "eval_every", "ckpt_every", "eval_batches", "snapshots", "description"}


def _resume_key(recipe: dict[str, Any]) -> dict[str, Any]:
    key = {k: v for k, v in recipe.items() if k not in _RESUMABLE}
    if recipe.get("min_lr_ratio", 1.0) < 1.0:
        key["steps"] = recipe["steps"]  # a decaying schedule depends on the total
    return key


@torch.no_grad()
def evaluate(model: HookedTransformer, data: TokenDataset, recipe: Recipe) -> dict[str, Any]:
    was = model.training
    model.eval()
    losses = []
    val = data.val if len(data.val) > recipe.n_ctx else data.train
    for batch in iter_eval_batches(val, recipe.batch_size, recipe.n_ctx, recipe.eval_batches):
        losses.append(float(model(batch, return_type="loss")))
    out: dict[str, Any] = {"val_loss": float(np.mean(losses))}
    if recipe.probe_induction:
        pr = induction_probe(model)
        li, hi_, vi = pr.best_induction
        lp, hp, vp = pr.best_prev_token
        out |= {
            "induction_score": vi,
            "induction_head": head_node_id(li, hi_),
            "prev_token_score": vp,
            "prev_token_head": head_node_id(lp, hp),
            "repeat_loss_first": pr.loss_first_half,
            "repeat_loss_second": pr.loss_repeat_half,
        }
    model.train(was)
    return out


def train(
    recipe: Recipe,
    *,
    run_dir: Path | None = None,
    out: Path | None = None,
    fresh: bool = False,
    progress: bool = True,
    log: Log = print,
    device: str | torch.device = "cpu",
) -> TrainResult:
    """Train `recipe` to completion, resuming from `run_dir/checkpoint` when it exists, on
    `device` (anything `lenscope.device.resolve_device` takes). The weights start the same on
    every device; bf16 recipes autocast on that device's type."""
    recipe.validate()
    dev = resolve_device(device)
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    run_dir = run_dir or lenscope_home() / "runs" / recipe.name
    out = out or lenscope_home() / "models" / recipe.name
    if fresh:
        shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = prepare_data(
        recipe.corpus, recipe.vocab_size, recipe.limit_bytes, progress=progress, log=log
    )
    tok = Tokenizer(data.tokenizer())
    model = build_model(recipe, tok, data.vocab_size).to(dev)
    counts = token_counts(data)
    model.manifest = Manifest(  # type: ignore[assignment]
        kind="model", schema_version=1, data={"token_counts": counts}
    )
    opt = _optimizer(model, recipe)
    ckpt = run_dir / "checkpoint"
    step = _load_checkpoint(ckpt, model, opt, recipe) if (ckpt / "state.json").is_file() else 0
    metrics_f = run_dir / "metrics.jsonl"
    _truncate_metrics(metrics_f, step)
    if step:
        log(f"resuming {recipe.name} from step {step}/{recipe.steps}")
    snaps = snapshot_steps(recipe)
    model.train()
    t0 = time.time()
    bar = _Progress(recipe, step, progress)
    last_eval: dict[str, Any] = {}
    while step < recipe.steps:
        if step in snaps:
            _snapshot(model, run_dir, step, recipe, counts)
        batch = sample_batch(
            data.train,
            recipe.batch_size,
            recipe.n_ctx,
            seed=recipe.seed,
            step=step,
            repeat_fraction=recipe.repeat_fraction,
        ).to(dev)
        for g in opt.param_groups:
            g["lr"] = lr_at(recipe, step)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=recipe.bf16):
            loss = model(batch, return_type="loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        opt.step()
        step += 1
        bar.update(step, float(loss.detach()))
        if step % recipe.eval_every == 0 or step == recipe.steps:
            last_eval = evaluate(model, data, recipe)
            rec = {"step": step, "tokens": step * recipe.tokens_per_step, "train_loss": float(loss)}
            rec |= last_eval
            with metrics_f.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            bar.note(_fmt(rec))
        if step % recipe.ckpt_every == 0 or step == recipe.steps:
            _save_checkpoint(ckpt, model, opt, step, recipe)
    bar.close()
    if step in snaps:
        _snapshot(model, run_dir, step, recipe, counts)
    if not last_eval:
        last_eval = evaluate(model, data, recipe)
    ev = last_eval | {"tokens_seen": recipe.steps * recipe.tokens_per_step}
    prov = {
        "recipe": recipe.to_dict(),
        "seed": recipe.seed,
        "data": data.manifest.provenance | {"path": str(data.path), "vocab_size": data.vocab_size},
    }
    save_model(model, out, provenance=prov, eval=ev, token_counts=counts)
    log(f"saved {recipe.name} to {out}: {_fmt(ev)}")
    return TrainResult(
        out, run_dir, step, step * recipe.tokens_per_step, ev["val_loss"], ev, time.time() - t0
    )


def _snapshot(
    model: HookedTransformer, run_dir: Path, step: int, recipe: Recipe, counts: list[int]
) -> None:
    dest = run_dir / "snapshots" / f"step_{step:07d}"
    if not dest.exists():
        save_model(
            model,
            dest,
            provenance={
                "recipe": recipe.name,
                "step": step,
                "tokens": step * recipe.tokens_per_step,
            },
            token_counts=counts,
        )


def _truncate_metrics(f: Path, step: int) -> None:
    if not f.exists():
        return
    keep = [
        ln for ln in f.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step
    ]
    f.write_text("".join(ln + "\n" for ln in keep))


def _fmt(d: dict[str, Any]) -> str:
    parts = []
    for k, v in d.items():
        parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    return ", ".join(parts)


class _Progress:
    """A rich progress bar on a terminal; periodic plain lines elsewhere (CI logs)."""

    def __init__(self, recipe: Recipe, start: int, enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.recipe = recipe
        self.console = Console(stderr=True)
        self.enabled = enabled
        self.t0 = time.time()
        self.start = start
        self.last_print = 0.0
        self.p: Progress | None = None
        if enabled and self.console.is_terminal:
            self.p = Progress(
                TextColumn(f"[bold]{recipe.name}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} steps"),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task = self.p.add_task("train", total=recipe.steps, completed=start, info="")
            self.p.start()

    def update(self, step: int, loss: float) -> None:
        el = time.time() - self.t0
        tps = (step - self.start) * self.recipe.tokens_per_step / max(el, 1e-9)
        info = f"loss {loss:.3f}  {tps:,.0f} tok/s"
        if self.p is not None:
            self.p.update(self.task, completed=step, info=info)
        elif self.enabled and time.time() - self.last_print > 30:
            self.last_print = time.time()
            self.console.print(f"{self.recipe.name} step {step}/{self.recipe.steps} {info}")

    def note(self, s: str) -> None:
        if self.enabled:
            self.console.print(f"  eval: {s}")

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()
