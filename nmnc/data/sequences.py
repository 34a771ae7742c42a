"""Sequence datasets for recurrent networks: inputs over time with a target at every step.

A batch is ``(x, y, scored)``: ``x`` float32 (B, T, input_dim), ``y`` long (B, T) with -1 where a
step has no loss, and ``scored`` bool (B, T) marking the steps accuracy is measured on (a subset of
the steps with ``y >= 0``). Like image splits, every batch is reproducible from (seed, step).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from .splits import TensorSplit, step_generator


@dataclass
class SequenceData:
    """A sequence dataset's train and test splits with its classes (the per-step targets)."""

    name: str
    train: object  # a SequenceSplit
    test: object
    classes: list[str]
    input_dim: int  # inputs per step
    seq_len: int  # steps per sequence
    source: str  # where the data came from
    extra: dict = field(default_factory=dict)

    # what the trainer reads from an ImageData; a sequence has no image preprocessing
    mean = ()
    std = ()
    input_size = 0
    kind = "sequence"

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class SequenceSplit:
    """One split of sequences. ``labels`` (N,) holds one class per sequence, used only to draw
    class-balanced subsets."""

    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx: torch.Tensor, augment: bool, gen: torch.Generator | None, device="cpu"):
        """``(x, y, scored)`` for the sequences ``idx``."""
        raise NotImplementedError

    def loader(
        self, batches: list[tuple[int, torch.Tensor]], augment: bool, seed: int, device="cpu", **_
    ) -> Iterator:
        for step, idx in batches:
            yield self.batch(idx, augment, step_generator(seed, step, stream=1), device)


class ArraySplit(SequenceSplit):
    """Sequences held in memory: inputs (N, T, n_in) float32, targets (N, T) long, scored (N, T)
    bool and labels (N,) long. There is no augmentation."""

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        scored: torch.Tensor,
        labels: torch.Tensor,
    ):
        n, t = targets.shape
        if inputs.shape[:2] != (n, t) or scored.shape != (n, t) or labels.shape != (n,):
            raise ValueError(
                f"inconsistent shapes: inputs {tuple(inputs.shape)}, targets {(n, t)}, "
                f"scored {tuple(scored.shape)}, labels {tuple(labels.shape)}"
            )
        self.inputs = inputs.float()
        self.targets = targets.long()
        self.scored = scored.bool()
        self.labels = labels.long()
        self._on_device: dict[str, tuple[torch.Tensor, ...]] = {}

    def _on(self, device) -> tuple[torch.Tensor, ...]:
        key = str(device)
        if key not in self._on_device:
            self._on_device[key] = tuple(
                t.to(device) for t in (self.inputs, self.targets, self.scored)
            )
        return self._on_device[key]

    def batch(self, idx: torch.Tensor, augment: bool, gen: torch.Generator | None, device="cpu"):
        inputs, targets, scored = self._on(device)
        idx = idx.to(device)
        return inputs[idx], targets[idx], scored[idx]


class RowSplit(SequenceSplit):
    """CIFAR images read row by row (sequential CIFAR): 32 steps of 96 inputs, the 32 pixels of
    a row left to right with each pixel's 3 channels together; the class is the target of the last
    step only. Normalisation and augmentation are the image split's own."""

    def __init__(self, images: TensorSplit):
        self.images = images

    @property
    def labels(self) -> torch.Tensor:
        return self.images.labels

    def batch(self, idx: torch.Tensor, augment: bool, gen: torch.Generator | None, device="cpu"):
        img, label = self.images.batch(idx, augment, gen, device)  # (B, C, H, W)
        b, c, h, w = img.shape
        x = img.permute(0, 2, 3, 1).reshape(b, h, w * c)  # x[b, r, 3*col + ch] = img[b, ch, r, col]
        y = torch.full((b, h), -1, dtype=torch.long, device=x.device)
        y[:, -1] = label
        scored = torch.zeros((b, h), dtype=torch.bool, device=x.device)
        scored[:, -1] = True
        return x, y, scored
