"""An image folder read from disk by loader processes (ImageNet scale): :class:`FolderSplit`.

Reproducible batches at any worker count and in any number of processes: each example's random
crop and flip come from a generator seeded by (seed, step, position of the example in the global
batch), drawn in whichever process decodes it. A process that loads only its share of each global
batch (``loader(..., part=(first, count))``, as the trainer asks under torchrun) therefore sees
the same pixels as one process reading the batch whole.

Workers decode (torchvision's libjpeg-turbo decoder), crop and resize, and hand over uint8
(B, 3, H, W) batches (a quarter of the bytes of float32 through the worker queues and pinned
memory); the loader moves them to the device and normalises them there, returning float32, in
channels-last memory format on CUDA.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..engine.noise import example_seed

AUGMENT = 1  # the augmentation stream of example_seed (2 is the rules' noise)


def crop_box(width: int, height: int, gen: torch.Generator) -> tuple[int, int, int, int]:
    """A random-resized-crop box (left, top, right, bottom): 8-100% of the image's area at an
    aspect ratio between 3/4 and 4/3 (log-uniform), ten tries, else the largest central crop
    inside that ratio range (the usual ImageNet training crop)."""
    area = width * height
    lo, hi = math.log(3 / 4), math.log(4 / 3)
    for _ in range(10):
        u = torch.rand(2, generator=gen).tolist()
        target = area * (0.08 + 0.92 * u[0])
        ratio = math.exp(lo + (hi - lo) * u[1])
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=gen))
            left = int(torch.randint(0, width - w + 1, (1,), generator=gen))
            return left, top, left + w, top + h
    if width / height < 3 / 4:  # too tall for every ratio: the full width
        w, h = width, min(height, round(width * 4 / 3))
    elif width / height > 4 / 3:  # too wide: the full height
        w, h = min(width, round(height * 4 / 3)), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def center_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The evaluation crop (left, top, right, bottom): the central square that becomes the
    center crop once the short side is resized to 256/224 of the input size."""
    side = round(min(width, height) * 224 / 256)  # the crop's side in the original's pixels
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def read_image(path: str) -> torch.Tensor:
    """An image file as uint8 (3, H, W) RGB, decoded by torchvision's libjpeg-turbo decoder
    (with the crop below, 1.5 to 2 times PIL's rate on one core; PIL reads what it cannot)."""
    try:  # deprecated since torchvision 0.29 (TorchCodec takes over); PIL serves once it goes
        from torchvision.io import ImageReadMode, decode_image
    except ImportError:
        decode_image = None
    if decode_image is not None:
        data = torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return decode_image(data, mode=ImageReadMode.RGB)
        except RuntimeError:
            pass  # a format torchvision does not decode
    from PIL import Image

    with Image.open(path) as im:
        return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)


class Examples(torch.utils.data.Dataset):
    """Image files as uint8 (3, size, size) tensors with their labels. A key is ``(index,
    example seed)``: a seed asks for a random resized crop and flip drawn from it, ``None`` for the
    evaluation crop."""

    def __init__(self, paths: np.ndarray, labels: np.ndarray, size: int):
        self.paths, self.labels, self.size = paths, labels, size  # numpy: no per-item refcounts

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int | None]) -> tuple[torch.Tensor, int]:
        from torchvision.transforms.v2.functional import resized_crop

        i, seed = key
        img = read_image(os.fsdecode(self.paths[i]))
        height, width = img.shape[1:]
        flip = False
        if seed is None:
            box = center_box(width, height)
        else:
            gen = torch.Generator().manual_seed(seed)
            box = crop_box(width, height, gen)
            flip = bool(torch.rand(1, generator=gen) < 0.5)
        left, top, right, bottom = box
        size = [self.size, self.size]
        img = resized_crop(img, top, left, bottom - top, right - left, size, antialias=True)
        return (img.flip(-1) if flip else img), int(self.labels[i])


class Plan:
    """The batch sampler of a :class:`FolderSplit` loader: for each ``(step, indices)`` global
    batch, the keys ``(index, example seed)`` of the examples at positions ``first`` to
    ``first + count - 1`` (``part``; the whole batch when ``part`` is None)."""

    def __init__(self, batches: list, seed: int, augment: bool, part: tuple[int, int] | None):
        self.batches, self.seed, self.augment, self.part = batches, seed, augment, part

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[tuple[int, int | None]]]:
        for step, idx in self.batches:  # converted lazily: a run's plan can be long
            first, count = self.part or (0, len(idx))
            share = torch.as_tensor(idx)[first : first + count].tolist()
            yield [
                (i, example_seed(self.seed, step, first + j, AUGMENT) if self.augment else None)
                for j, i in enumerate(share)
            ]


class FolderSplit:
    """An ImageFolder (``<folder>/<class>/<image>``) read from disk by loader processes."""

    loads_part = True  # loader(part=...) reads a process's share of each batch, nothing more

    def __init__(self, folder, mean, std, input_size: int, train: bool):
        from torchvision import datasets

        found = datasets.ImageFolder(str(folder))  # its file list only: Examples reads the files
        self.examples = Examples(
            np.array([os.fsencode(p) for p, _ in found.samples], dtype=np.bytes_),
            np.array(found.targets, dtype=np.int64),
            input_size,
        )
        self.labels = torch.from_numpy(self.examples.labels)
        self.classes = found.classes
        self.mean, self.std = tuple(mean), tuple(std)
        self.input_size = input_size
        self.train = train  # only a training split is augmented

    def __len__(self) -> int:
        return len(self.labels)

    def loader(
        self,
        batches: list,
        augment: bool,
        seed: int,
        device="cpu",
        num_workers: int = 4,
        part: tuple[int, int] | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches ``(x, y)`` for ``batches`` of ``(step, indices)``: x (B, 3, size, size)
        normalised float32 on ``device`` (channels-last on CUDA), y (B,) labels; with ``part=
        (first, count)`` only the examples at those positions of each batch. ``num_workers``
        processes decode (0: this one)."""
        from torch.utils.data import DataLoader

        device = torch.device(device)
        cuda = device.type == "cuda"
        dl = DataLoader(
            self.examples,
            batch_sampler=Plan(batches, seed, augment and self.train, part),
            num_workers=num_workers,
            pin_memory=cuda,
            # each call iterates its loader once (training: one loader for the whole run), so
            # workers need not outlive it; two batches in flight per worker hide decode jitter
            prefetch_factor=2 if num_workers else None,
        )
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1) * 255
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1) * 255
        layout = torch.channels_last if cuda else torch.contiguous_format
        for x, y in dl:
            x = x.to(device, non_blocking=True).float().sub_(mean).div_(std)
            yield x.contiguous(memory_format=layout), y.to(device, non_blocking=True)
