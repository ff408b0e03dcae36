"""Data parallelism under torchrun: where this process sits, and the collectives the trainer uses.

    dist = Dist.from_env()          # rank 0 of 1 without torchrun
    stop_group = dist.start(plan)   # join the process group (NCCL on CUDA GPUs, else gloo)
    dist.sum(t)                     # all-reduce in place (nothing to do for one process)
    dist.any(flag, stop_group)      # True on every rank when it is True on one

Every rank trains the same model on its own slice of the global batch
(`course_lib.train_data.rank_rows`); DistributedDataParallel averages the gradients during
`backward()`. Only rank 0 (`dist.main`) writes files. The trainer itself is `course_lib.train`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from course_lib import device as course_device


@dataclass(frozen=True)
class Dist:
    """Where this process sits in a torchrun job (world_size 1 without torchrun)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls) -> Dist:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world)

    def start(self, plan: course_device.DevicePlan):
        """Join the process group (once per process) and return the gloo group the ranks
        agree on stopping over: a CPU flag, no GPU sync (None: no job, or gloo already)."""
        if not self.enabled:
            return None
        if not torch.distributed.is_initialized():
            if plan.type == "cuda":
                torch.cuda.set_device(plan.torch_device)
            torch.distributed.init_process_group("nccl" if plan.type == "cuda" else "gloo")
        if torch.distributed.get_backend() != "gloo":
            return torch.distributed.new_group(backend="gloo")
        return None

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """`t` summed over the ranks, in place (returned for convenience)."""
        if self.enabled:
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
        return t

    def any(self, flag: bool, group=None) -> bool:
        """True on every rank when `flag` is True on at least one."""
        if not self.enabled:
            return flag
        t = torch.tensor([int(flag)])
        torch.distributed.all_reduce(t, torch.distributed.ReduceOp.MAX, group)
        return bool(t.item())

    def gather(self, obj: object) -> list:
        """[obj of rank 0, obj of rank 1, ...] on every rank."""
        if not self.enabled:
            return [obj]
        found = [None] * self.world_size
        torch.distributed.all_gather_object(found, obj)
        return found

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()
