"""SAE training speed: lenscope TopK vs SAELens' TopK training SAE, and vs the machine's matmul.

Same process, same random activations: d_in 768, 16x latents (12,288), k 32, batch 4,096 tokens,
float32, CPU. One training step = forward, loss, backward, Adam update (+ each library's
decoder-norm / firing bookkeeping). SAELens is timed as its trainer runs it (Adam with default
settings, grad-norm clipping 1.0, firing statistics) with dense and with sparse activations, and
also with a fused Adam as its best case. The matmul rate is that of one plain matmul of the
encoder's shape ([4096, 768] @ [768, 12288]), the faster of torch's `mm` and oneDNN's kernel;
fraction_of_matmul_rate = (encoder matmul FLOPs per
step / step time) / matmul rate, i.e. how close the whole step comes to the one unavoidable
matmul. SAE_BENCH_THREADS sets torch's thread count (default: all cores), SAE_BENCH_ROUNDS the
number of rounds. The candidates run in interleaved rounds (matmul, lenscope, SAELens variants, repeat;
medians reported) so that all see the same machine load. Prints one JSON object. `--device cuda`
runs lenscope, SAELens (where installed) and the plain matmul on the GPU; oneDNN's kernel is a
CPU kernel and is left out there.
"""

from __future__ import annotations

import lenscope  # noqa: F401  before torch: large tensors on huge pages (lenscope.runtime)

# isort: split

import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import common
from common import bench_device, machine, sync

D_IN, EXPANSION, K, BATCH = 768, 16, 32, 4096
D_SAE = D_IN * EXPANSION
STEPS = int(os.environ.get("SAE_BENCH_ROUNDS", "5"))
THREADS = os.environ.get("SAE_BENCH_THREADS")  # default: torch's choice (all cores)


def once(step: Callable[[int], object], i: int) -> float:
    sync()
    t0 = time.perf_counter()
    step(i)
    sync()
    return time.perf_counter() - t0


def median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(D_IN, D_IN, generator=g) / D_IN**0.5
    xs = [torch.randn(BATCH, D_IN, generator=g) @ mix + 0.1 for _ in range(3)]
    return [x.to(common.DEVICE) for x in xs]


def matmul_step(kernel: str) -> Callable[[int], object]:
    """One plain matmul of the encoder's shape: torch's `mm` into a reused output ("torch", MKL
    on x86) or oneDNN's linear kernel ("onednn", `lenscope.linalg`). The faster sets the rate."""
    from lenscope.linalg import linear_t

    dev = common.DEVICE
    w_t = torch.randn(D_SAE, D_IN, device=dev) / D_IN**0.5
    x = torch.randn(BATCH, D_IN, device=dev)
    if kernel == "onednn":
        return lambda _i: linear_t(x, w_t)
    out = torch.empty(BATCH, D_SAE, device=dev)
    return lambda _i: torch.mm(x, w_t.t(), out=out)


def lenscope_step(xs: list[torch.Tensor]) -> Callable[[int], object]:
    from lenscope.sae import SAEConfig, SparseAutoencoder, TrainConfig
    from lenscope.sae.distributed import Comm
    from lenscope.sae.step import TrainState, train_step
    from lenscope.sae.train import make_optimizer

    cfg_sae = SAEConfig(d_in=D_IN, d_sae=D_SAE, architecture="topk", k=K)
    sae = SparseAutoencoder(cfg_sae, device=common.DEVICE)
    sae.init_from_data(xs[0])
    cfg = TrainConfig(batch_size=BATCH)
    lr = cfg.resolved_lr(D_SAE)
    opt = make_optimizer(sae, cfg, lr)
    since = torch.zeros(D_SAE, dtype=torch.long, device=common.DEVICE)
    state = TrainState(mse_scale=1.0, tokens_since_fired=since)
    comm = Comm()
    return lambda i: train_step(sae, opt, xs[i % len(xs)], cfg, state, comm, lr)


def saelens_step(xs: list[torch.Tensor], sparse: bool, fused: bool) -> Callable[[int], object]:
    from sae_lens.saes.sae import TrainStepInput
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = TopKTrainingSAEConfig(
            d_in=D_IN,
            d_sae=D_SAE,
            k=K,
            dtype="float32",
            device=str(common.DEVICE),
            use_sparse_activations=sparse,
        )
        sae = TopKTrainingSAE(cfg)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4, fused=True if fused else None)
    since_fired = torch.zeros(D_SAE, device=common.DEVICE)
    freq = torch.zeros(D_SAE, device=common.DEVICE)

    def step(i: int) -> None:  # sae_lens.training.sae_trainer.SAETrainer._train_step
        sae.train()
        out = sae.training_forward_pass(
            TrainStepInput(
                sae_in=xs[i % len(xs)],
                coefficients={},
                dead_neuron_mask=None,
                n_training_steps=i,
                is_logging_step=False,
            )
        )
        with torch.no_grad():
            firing = out.feature_acts.bool().float()
            did_fire = firing.sum(-2).bool()
            if did_fire.is_sparse:
                did_fire = did_fire.to_dense()
            since_fired.add_(1)
            since_fired[did_fire] = 0
            freq.add_(firing.sum(0).to_dense() if firing.is_sparse else firing.sum(0))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        opt.step()
        opt.zero_grad()

    return step


def main() -> None:
    dev = bench_device()
    if THREADS:
        torch.set_num_threads(int(THREADS))
    torch.manual_seed(0)
    xs = batches()
    steps = {"matmul_torch": matmul_step("torch"), "lenscope": lenscope_step(xs)}
    if dev.type == "cpu":
        steps["matmul_onednn"] = matmul_step("onednn")
    sparse_error = None
    try:
        steps["saelens"] = saelens_step(xs, sparse=False, fused=False)
        steps["saelens_fused_adam"] = saelens_step(xs, sparse=False, fused=True)
    except ImportError:
        sparse_error = "SAELens is not installed"
    try:  # SAELens' sparse activations: fails in backward on CPU with torch 2.13
        sparse = saelens_step(xs, sparse=True, fused=False)
        sparse(0)
        steps["saelens_sparse_acts"] = sparse
    except ImportError:
        pass
    except (NotImplementedError, RuntimeError) as e:
        sparse_error = str(e).splitlines()[0][:160]
    for fn in steps.values():  # warm up
        fn(0)
    # interleaved rounds: every candidate runs under the same machine load
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(STEPS):
        for name, fn in steps.items():
            times[name].append(once(fn, r + 1))
    t = {k: median(v) for k, v in times.items()}
    nan = float("nan")
    t.setdefault("matmul_onednn", nan)
    t_mm = min(t["matmul_torch"], t["matmul_onednn"]) if dev.type == "cpu" else t["matmul_torch"]
    t_ours = t["lenscope"]
    best_sl = min((v for k, v in t.items() if k.startswith("saelens")), default=nan)
    t.setdefault("saelens", nan)
    t.setdefault("saelens_fused_adam", nan)
    try:
        import sae_lens

        slv = sae_lens.__version__
    except (ImportError, AttributeError):
        slv = "?"
    result = {
        "benchmark": "sae_train",
        "shape": {"d_in": D_IN, "d_sae": D_SAE, "k": K, "batch": BATCH, "dtype": "float32"},
        "device": (
            f"cpu ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"
            if dev.type == "cpu"
            else f"{dev} ({torch.cuda.get_device_name(dev)})"
        ),
        "torch": torch.__version__,
        "sae_lens": slv,
        "rounds": STEPS,
        "load_average": os.getloadavg()[0],
        "lenscope_tokens_per_s": BATCH / t_ours,
        "saelens_tokens_per_s": BATCH / t["saelens"],
        "saelens_fused_adam_tokens_per_s": BATCH / t["saelens_fused_adam"],
        "saelens_sparse_acts_tokens_per_s": (
            BATCH / t["saelens_sparse_acts"] if "saelens_sparse_acts" in t else None
        ),
        "saelens_sparse_acts_error": sparse_error,
        "speedup_vs_saelens_as_trained": t["saelens"] / t_ours,
        "speedup_vs_best_saelens_variant": best_sl / t_ours,
        "matmul_gflops": 2 * BATCH * D_IN * D_SAE / t_mm / 1e9,
        "matmul_gflops_torch": 2 * BATCH * D_IN * D_SAE / t["matmul_torch"] / 1e9,
        "matmul_gflops_onednn": 2 * BATCH * D_IN * D_SAE / t["matmul_onednn"] / 1e9,
        "encoder_matmul_seconds": t_mm,
        "lenscope_step_seconds": t_ours,
        "fraction_of_matmul_rate": t_mm / t_ours,
        "goals": {"speedup_vs_saelens": 2.0, "fraction_of_matmul_rate": 0.5},
    }
    result["machine"] = machine()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
