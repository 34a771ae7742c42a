"""Splits of a dataset and the batches drawn from them.

Every batch is reproducible from (seed, step): the epoch order is a seeded permutation and the
augmentation of a batch uses a generator seeded by its step (in an image folder, by its step and
each example's position: :mod:`nmnc.data.folder`), so a resumed run sees exactly the batches an
uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F


def step_generator(
    seed: int, step: int, stream: int = 0, device: str | torch.device = "cpu"
) -> torch.Generator:
    """A generator for one step, independent of everything that happened before it."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + step * 7_919 + stream * 104_729) % (2**63 - 1))
    return g


class TensorSplit:
    """Images held in memory as a uint8 tensor (N, H, W, 3) with integer labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean, std, input_size: int):
        self.images, self.labels = images, labels
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.input_size = input_size
        self._device_images: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.labels)

    def _on(self, device) -> torch.Tensor:
        key = str(device)
        if key not in self._device_images:
            self._device_images[key] = self.images.to(device)
        return self._device_images[key]

    def batch(self, idx: torch.Tensor, augment: bool, gen: torch.Generator | None, device="cpu"):
        imgs = self._on(device)[idx.to(device)]  # (B, H, W, 3) uint8
        x = imgs.permute(0, 3, 1, 2).float().div_(255)
        if augment:
            x = random_crop_flip(x, pad=4, gen=gen)
        if x.shape[-1] != self.input_size:
            x = F.interpolate(
                x,
                size=(self.input_size, self.input_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        return x, self.labels[idx].to(device)

    def loader(
        self, batches: list[tuple[int, torch.Tensor]], augment: bool, seed: int, device="cpu", **_
    ) -> Iterator:
        for step, idx in batches:
            gen = step_generator(seed, step, stream=1)
            yield self.batch(idx, augment, gen, device)


def random_crop_flip(x: torch.Tensor, pad: int, gen: torch.Generator | None) -> torch.Tensor:
    """Standard CIFAR augmentation, vectorised: zero-pad, random crop back to size, random
    h-flip."""
    B, C, H, W = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    off = torch.randint(0, 2 * pad + 1, (B, 2), generator=gen).to(x.device)
    flip = (torch.rand(B, generator=gen) < 0.5).to(x.device)
    rows = off[:, 0:1] + torch.arange(H, device=x.device)  # (B, H)
    cols = off[:, 1:2] + torch.arange(W, device=x.device)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    b = torch.arange(B, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def balanced_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices of a seeded class-balanced subset of ``n`` examples (sorted)."""
    classes = torch.unique(labels)
    g = torch.Generator().manual_seed(seed)
    per, extra = divmod(n, len(classes))
    chosen = []
    for i, c in enumerate(classes):
        idx = torch.nonzero(labels == c).flatten()
        take = per + (1 if i < extra else 0)
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:take]])
    return torch.sort(torch.cat(chosen)).values
