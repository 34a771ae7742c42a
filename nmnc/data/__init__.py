"""Datasets behind one registry: ``load_dataset('cifar10', root)`` returns train and test splits.

A dataset factory takes the data root, a download flag, the dataset's settings (``--set
data.KEY=VALUE``) and, for a family of datasets, the argument of its name (``neurogym:<TaskId>``),
and returns an :class:`ImageData` or a :class:`~nmnc.data.sequences.SequenceData` (sequences for
recurrent models: ``scifar10``, ``neurogym:<TaskId>``); missing or broken data raise
:class:`DataError` naming the dataset, where it looked and how to provide it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .._registry import Registry
from ..errors import NmncError
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


from . import cifar10, imagenet, neurogym, scifar  # noqa: E402,F401  (registration)


def load_dataset(
    name: str,
    root: str | Path | None = None,
    download: bool = False,
    input_size: int | None = None,
    settings: dict | None = None,
):
    """Load a registered dataset from the data root (see :func:`data_root`); ``settings`` are the
    dataset's own (``--set data.KEY=VALUE``)."""
    entry = DATASETS.get(name)
    return entry.factory(
        data_root(root),
        download=download,
        input_size=input_size,
        settings=dict(settings or {}),
        arg=DATASETS.argument(name),
    )


def check_dataset(name: str, settings: dict | None = None) -> None:
    """Refuse an unknown dataset or setting before any work (one line, closest match)."""
    entry = DATASETS.get(name)
    check = getattr(entry.factory, "check", None)
    if check is not None:
        check(dict(settings or {}), DATASETS.argument(name))
    elif settings:
        raise NmncError(
            f"dataset {name} has no settings, got data.{sorted(settings)[0]}; drop the data.* keys"
        )


__all__ = ["DATASETS", "ImageData", "load_dataset", "data_root", "cache_dir"]
