"""Sequential CIFAR-10: each CIFAR-10 image read as a sequence of its 32 rows (32 steps of 96
inputs), classified at the last step."""

from __future__ import annotations

from pathlib import Path

from ..errors import NmncError
from . import DATASETS, NoSettings
from .cifar10 import cifar10
from .sequences import RowSplit, SequenceData


@DATASETS.register(
    "scifar10",
    NoSettings,
    help="sequential CIFAR-10: each image read as 32 rows of 96 inputs (32 steps)",
    kind="sequence",
)
def scifar10(
    root: Path,
    download: bool = False,
    input_size: int | None = None,
    settings=None,
    arg: str | None = None,
) -> SequenceData:
    """CIFAR-10 from the data root (see :func:`nmnc.data.cifar10.cifar10`) as row sequences.
    ``input_size`` is ignored: the rows are always those of the 32x32 image."""
    check(settings, arg)
    images = cifar10(root, download)
    return SequenceData(
        "scifar10",
        RowSplit(images.train),
        RowSplit(images.test),
        list(images.classes),
        input_dim=3 * 32,
        seq_len=32,
        source=images.source,
    )


def check(settings: dict | None, arg: str | None = None) -> None:
    """Refuse settings and a ':' argument: scifar10 has neither."""
    if isinstance(settings, dict) and settings:
        raise NmncError(
            f"scifar10 has no settings (got data.{', data.'.join(sorted(settings))}); "
            "drop the data.* settings"
        )
    if arg:
        raise NmncError(f"scifar10 takes no ':{arg}'; use --dataset scifar10")


scifar10.check = check  # what nmnc.data.check_dataset calls
