"""Noise keyed by example: the perturbations of example i at a step come from a generator seeded
by (seed, step, i) alone, so they do not depend on how a global batch is split among processes.

    noise = ExampleNoise(seed=0, step=7, first=16, count=16)  # this process: examples 16..31
    xi = normal(noise, (P, 16, k), device)                     # (P, B, k), example by example

:func:`normal` also takes a plain ``torch.Generator`` (one stream for the whole batch), which the
analyses use; training draws through :class:`ExampleNoise` on one process and on many.
"""

from __future__ import annotations

import numpy as np
import torch

NOISE_STREAM = 2  # stream 0: batches, 1: augmentation, 2: noise


def example_seed(seed: int, step: int, example: int, stream: int = NOISE_STREAM) -> int:
    """A 63-bit seed for one example's noise at one step (a hash, so nearby keys differ)."""
    state = np.random.SeedSequence([seed, step, example, stream]).generate_state(2, np.uint32)
    return (int(state[0]) << 31 | int(state[1])) & (2**63 - 1)


class ExampleNoise:
    """One generator per example of this process's share of the batch (global positions
    ``first .. first + count - 1``); each layer's draw continues every example's own stream."""

    def __init__(self, seed: int, step: int, first: int, count: int, device="cpu"):
        self.first, self.count = first, count
        self.generators = []
        for i in range(first, first + count):
            g = torch.Generator(device=device)
            g.manual_seed(example_seed(seed, step, i))
            self.generators.append(g)

    def normal(self, size: tuple[int, ...], device) -> torch.Tensor:
        """Standard normal noise of ``size = (P, rows, *dims)``; ``rows`` is a multiple of the
        examples (a recurrent model's rows are example-major: example, then step)."""
        P, rows, *dims = size
        if rows % self.count:
            raise ValueError(f"{rows} noise rows do not split over {self.count} examples")
        per = rows // self.count
        parts = [torch.randn((P, per, *dims), generator=g, device=device) for g in self.generators]
        return torch.cat(parts, dim=1)


def normal(gen, size: tuple[int, ...], device) -> torch.Tensor:
    """Standard normal noise of ``size`` (P, rows, ...) from a ``torch.Generator`` or an
    :class:`ExampleNoise`."""
    if isinstance(gen, ExampleNoise):
        return gen.normal(tuple(size), device)
    return torch.randn(size, generator=gen, device=device)
