"""Data parallelism for every rule: ``torchrun --nproc-per-node N -m nmnc.train ...``.

Each process trains on its share of the global batch (``--batch-size`` stays the global batch:
process r takes positions ``r*B/N .. (r+1)*B/N - 1``). What keeps N processes equal to one:

- the noise of example i comes from a generator seeded by (seed, step, i)
  (:class:`~nmnc.engine.noise.ExampleNoise`), whatever process holds it;
- NMNC's manifolds see the whole batch: the activity rows of every process are gathered in
  example order before each update (:meth:`World.gather`), so every process holds the same
  manifold, the one a single process would hold;
- gradients are averaged over processes after each step (:meth:`World.average_gradients`), which is
  the gradient of the global batch mean, as DistributedDataParallel's all-reduce makes it. The
  rules run their own passes (stage by stage, perturbed copies), not ``module.forward``, so the
  reduction is called explicitly rather than through DDP's forward hooks.

BatchNorm normalises by each process's own batch, as under DDP without SyncBatchNorm: models with
``norm='bn'`` match a single process only approximately. Backends: NCCL on GPUs, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import NmncError


@dataclass(frozen=True)
class World:
    """This process's place among the processes of a run (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def main(self) -> bool:
        """Whether this process writes checkpoints, logs and progress (rank 0)."""
        return self.rank == 0

    def share(self, batch_size: int) -> tuple[int, int]:
        """(first position, count) of this process's share of a global batch."""
        per = batch_size // self.size
        return self.rank * per, per

    def average_gradients(self, params, weight: float = 1.0) -> None:
        """Replace every ``.grad`` by the mean over processes of ``weight * grad`` (one flat
        all-reduce); ``weight`` corrects for processes holding unequal shares of the loss."""
        if self.size == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        flat = flat * weight if weight else torch.zeros_like(flat)  # no labels here: no share
        dist.all_reduce(flat)
        flat /= self.size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` averaged over processes."""
        if self.size == 1:
            return t
        t = t.clone()
        dist.all_reduce(t)
        return t / self.size

    def agree(self, start) -> None:
        """Run ``start()`` (which may raise on some processes only, e.g. rank 0's lock) and make
        every process stop if any did, instead of leaving the others waiting in a collective."""
        error = None
        try:
            start()
        except NmncError as err:
            error = err
        if self.size > 1:
            device = "cuda" if self.backend == "nccl" else "cpu"
            failed = torch.tensor([float(error is not None)], device=device)
            dist.all_reduce(failed)
            if failed.item() and error is None:
                raise NmncError("another process of this run could not start (its error is above)")
        if error is not None:
            raise error

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Every process's rows (the same count each), concatenated in rank order."""
        if self.size == 1:
            return rows
        parts = [torch.empty_like(rows) for _ in range(self.size)]
        dist.all_gather(parts, rows.contiguous())
        return torch.cat(parts)

    def sum(self, values: list[float], device) -> list[float]:
        """``values`` summed over processes."""
        if self.size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def join(device: str) -> tuple[World, str]:
    """Join the process group torchrun started (``WORLD_SIZE`` > 1 in the environment) and return
    this process's world and device; one process without torchrun: ``World()`` and ``device``."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size == 1:
            return World(), device
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError) as err:
        raise NmncError(
            f"WORLD_SIZE is set but RANK/LOCAL_RANK are missing or not numbers ({err}); start "
            "many processes with torchrun, or unset WORLD_SIZE for one"
        ) from None
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if torch.cuda.device_count() <= local:
            raise NmncError(
                f"process {rank} needs GPU {local} but {torch.cuda.device_count()} are visible; "
                "start at most one process per GPU (--nproc-per-node)"
            )
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    elif device == "auto":
        device = "cpu"
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend)
        except (ValueError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0][:200]
            raise NmncError(
                f"could not join the process group ({backend}): {first}; start with torchrun"
            ) from None
    return World(rank, size, local, backend), device


def main_process() -> bool:
    """Whether this is rank 0 of torchrun's processes (or the only process)."""
    return int(os.environ.get("RANK", "0")) == 0


def leave() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
