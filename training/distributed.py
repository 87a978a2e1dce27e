"""Data-parallel training under ``torchrun`` (or any launcher that sets ``RANK`` and ``WORLD_SIZE``).

    torchrun --nproc_per_node 2 -m selfsteer.cli.main train config.yaml       # one machine
    torchrun --nnodes 2 --node_rank R --master_addr HOST --nproc_per_node 8 \\
        -m selfsteer.cli.main train config.yaml                                # several

Every rank runs the same loop on the same step: the step's questions and rollouts are a pure
function of (seed, step) and the weights, which stay identical on every rank. The update is
split: each rank computes the loss of its share of the step's items (contributions normalised
by the whole step's `Normaliser`), the gradients are summed over ranks with one all-reduce, and
every rank takes the same optimiser step. So ``world`` processes compute the gradient of the
same global batch as one process does, and reach the same weights up to floating-point summation
order. Rank 0 alone writes logs, checkpoints and exported models; every rank reads the same
checkpoint on resume (``out_dir`` must be on storage all nodes share).

The process group uses NCCL when the ranks train on CUDA, else gloo; each rank takes the GPU of
its ``LOCAL_RANK``. Without a launcher (``WORLD_SIZE`` unset or 1) nothing changes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .objectives.contract import split


@dataclass(frozen=True)
class DataParallel:
    """This process's place among the data-parallel ranks (rank 0 of 1 without a launcher)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """True on the rank that writes logs, checkpoints and models."""
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DataParallel:
        """Join the process group the launcher describes in the environment (once per process)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            cuda = torch.cuda.is_available()
            if cuda:
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if cuda else "gloo")
        return cls(dist.get_rank(), dist.get_world_size())

    def parts(self, items: Sequence[Any], grad_accum: int) -> list[list[Any]]:
        """This rank's micro-batches: its contiguous share of ``items``, in ``grad_accum`` parts."""
        if self.world == 1:
            return split(items, grad_accum)  # exactly `Batch.parts`
        share = split(items, self.world)[self.rank] if len(items) > self.rank else []
        return split(share, grad_accum) if share else []

    def broadcast_weights(self, params: Sequence[torch.Tensor]) -> None:
        """Give every rank rank 0's weights (the starting point must be the same everywhere)."""
        if self.world > 1:
            import torch.distributed as dist

            with torch.no_grad():
                for p in params:
                    dist.broadcast(p.data, src=0)

    def sum_gradients(self, params: Sequence[torch.Tensor]) -> None:
        """Sum the gradients of ``params`` over ranks in one all-reduce (missing gradients count as 0)."""
        if self.world == 1:
            return
        import torch.distributed as dist

        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat)
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset: offset + p.numel()].view_as(p.grad))
            offset += p.numel()

    def sum_stats(self, stats: dict[str, float]) -> dict[str, float]:
        """Per-rank loss statistics summed over ranks (each rank's are contributions to the step's)."""
        if self.world == 1:
            return stats
        import torch.distributed as dist

        gathered: list[dict[str, float] | None] = [None] * self.world
        dist.all_gather_object(gathered, stats)
        total: dict[str, float] = {}
        for part in gathered:
            for k, v in (part or {}).items():
                total[k] = total.get(k, 0.0) + v
        return total


class SilentLog:
    """The metrics log of every rank but 0 (rank 0 writes the run's one log)."""

    def write(self, step: int, kind: str, values: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass
