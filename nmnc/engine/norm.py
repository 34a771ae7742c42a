"""BatchNorm in perturbed passes: the clean pass's batch statistics, not the running ones.

In training mode BatchNorm normalises each batch by its own mean and variance. The perturbed
passes must see the network the clean pass saw, so :func:`capture_batch_stats` records, during
the clean pass, the statistics every BatchNorm layer normalised with, and :func:`clean_stats`
makes the perturbed passes normalise with exactly those (as constants: perturbed copies neither
change the statistics nor update the running averages).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

Stats = dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The model's BatchNorm layers."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def capture_batch_stats(model: nn.Module) -> Iterator[Stats]:
    """Yield a dict that fills with (mean, biased variance) of each training-mode BatchNorm's
    input, as the clean forward pass inside the block normalises with them."""
    stats: Stats = {}

    def hook(m, inputs):
        if m.training:
            x = inputs[0].detach().float()
            dims = [0] + list(range(2, x.dim()))
            stats[m] = (x.mean(dims), x.var(dims, unbiased=False))

    handles = [m.register_forward_pre_hook(hook) for m in batch_norms(model)]
    try:
        yield stats
    finally:
        for h in handles:
            h.remove()


@contextmanager
def clean_stats(model: nn.Module, stats: Stats | None = None) -> Iterator[None]:
    """BatchNorm layers normalise with ``stats`` (captured from the clean pass) inside the block,
    and with their running statistics where none were captured; nothing is updated."""
    stats = stats or {}
    saved = []
    for m in batch_norms(model):
        saved.append((m, m.training, m.running_mean, m.running_var))
        m.eval()
        if m in stats and m.running_mean is not None:
            mean, var = stats[m]
            m.running_mean, m.running_var = mean.to(m.running_mean), var.to(m.running_var)
    try:
        yield
    finally:
        for m, training, mean, var in saved:
            m.running_mean, m.running_var = mean, var
            m.train(training)
