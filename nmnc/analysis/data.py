"""Inputs for analyses: a seeded sample of held-out test images of the dataset a checkpoint used."""

from __future__ import annotations

import torch

from ..checkpoint import Checkpoint
from ..data import load_dataset
from ..errors import NmncError


def held_out(
    ckpt: Checkpoint, images: int, data_root: str | None = None, seed: int = 0
) -> torch.Tensor:
    """``images`` test images (normalised as in training), drawn with a fixed seed."""
    if images < 1:
        raise NmncError(f"images must be at least 1, got {images}")
    data = load_dataset(ckpt.dataset, data_root, input_size=ckpt.input_size)
    n = len(data.test)
    if images > n:
        raise NmncError(f"images={images} exceeds the {n} test images of {ckpt.dataset}")
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:images]
    return data.test.batch(idx, False, None)[0]
