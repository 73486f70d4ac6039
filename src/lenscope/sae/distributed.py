"""Data parallelism for SAE training: the same command under `torchrun --nproc_per_node N`.

Each rank computes the gradient of its share of the global batch with the loss normalised by the
*global* batch, so one all-reduce (sum) of a flat gradient buffer yields exactly the 1-process
gradient (DDP semantics, done by hand because the sparse backward makes DDP's buckets pointless).
Statistics (reconstruction error, L0, which latents fired) are summed the same way, so every rank
keeps identical dead-latent counters. gloo on CPU, nccl on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from lenscope.errors import InputError


@dataclass
class Comm:
    """This process's place in a data-parallel group (world 1: everything is a no-op)."""

    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum_(self, t: Tensor) -> Tensor:
        if self.active:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def all_reduce_min_(self, t: Tensor) -> Tensor:
        if self.active:
            dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return t

    def all_gather_cat(self, t: Tensor) -> Tensor:
        """Concatenate equal-shaped tensors of all ranks along dim 0, in rank order."""
        if not self.active:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    def all_reduce_grads_(self, params: list[torch.nn.Parameter]) -> None:
        """Sum every parameter's gradient over ranks with one flat all-reduce."""
        if not self.active:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        off = 0
        for p, g in zip(params, grads, strict=True):
            n = g.numel()
            new = flat[off : off + n].view(p.shape)
            if p.grad is None:
                p.grad = new.clone()
            else:
                p.grad.copy_(new)
            off += n

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def comm_from_env(device: str = "cpu") -> Comm:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Comm()
    rank = int(os.environ.get("RANK", "0"))
    if not dist.is_available():
        raise InputError("torch.distributed is not available in this torch build")
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return Comm(rank=dist.get_rank(), world=dist.get_world_size())
