"""Datasets behind one registry: ``load_dataset('cifar10', root)`` returns train and test splits.

A dataset factory takes the data root and a download flag and returns an :class:`ImageData`;
missing or broken data raise :class:`DataError` naming the dataset, where it looked and how to
provide it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .._registry import Registry
from .paths import cache_dir, data_root

DATASETS = Registry("dataset")


@dataclass
class ImageData:
    """A dataset's train and test splits with its classes and preprocessing."""

    name: str
    train: object  # TensorSplit or FolderSplit
    test: object
    classes: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    source: str  # where the files were read from
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class NoSettings:
    """Settings of a registry entry that has none."""

    pass


from . import cifar10, imagenet  # noqa: E402,F401  (registration)


def load_dataset(
    name: str, root: str | Path | None = None, download: bool = False, input_size: int | None = None
) -> ImageData:
    """Load a registered dataset from the data root (see :func:`data_root`)."""
    entry = DATASETS.get(name)
    return entry.factory(data_root(root), download=download, input_size=input_size)


__all__ = ["DATASETS", "ImageData", "load_dataset", "data_root", "cache_dir"]
