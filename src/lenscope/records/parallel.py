"""torch.distributed for harvests: the same code runs as 1 process or under `torchrun`."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun (WORLD_SIZE > 1)."""
    if not dist.is_available():
        return 0, 1
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def over_ranks(value: float, world: int, op: str = "sum") -> float:
    """`value` summed ("sum") or maximised ("max") over the ranks; every rank must call it."""
    if world <= 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=local_device())  # NCCL: on the GPU
    dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return float(t.item())


def local_device() -> torch.device:
    """cuda:LOCAL_RANK when GPUs are present, else the CPU."""
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
    return torch.device("cpu")
