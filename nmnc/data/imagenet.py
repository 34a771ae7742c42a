"""ImageNet (or any ImageNet-style folder): ``<data root>/imagenet/train/<class>/*`` and
``val/<class>/*``."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from . import DATASETS, ImageData, NoSettings
from .folder import FolderSplit

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@DATASETS.register(
    "imagenet", NoSettings, help="ImageNet-style ImageFolder train/ and val/ (224x224)"
)
def imagenet(
    root: Path, download: bool = False, input_size: int | None = None, settings=None, arg=None
) -> ImageData:
    """An ImageNet-style folder: train/<class>/* and val/<class>/* under <root>/imagenet."""
    base = root / "imagenet"
    if not ((base / "train").is_dir() and (base / "val").is_dir()):
        raise DataError(
            f"imagenet: no train/ and val/ folders in {base}; "
            "ImageNet cannot be downloaded automatically "
            "(its licence needs a login): put train/<class>/*.JPEG and val/<class>/*.JPEG there, "
            "or set --data-root / NMNC_DATA_ROOT"
        )
    size = input_size or 224
    try:
        train = FolderSplit(base / "train", MEAN, STD, size, train=True)
        val = FolderSplit(base / "val", MEAN, STD, size, train=False)
    except (FileNotFoundError, RuntimeError) as err:
        raise DataError(f"imagenet: cannot read the image folders in {base} ({err})") from None
    if train.classes != val.classes:
        raise DataError(
            f"imagenet: train/ has {len(train.classes)} classes and val/ has {len(val.classes)}; "
            "they must hold the same class folders"
        )
    return ImageData("imagenet", train, val, train.classes, MEAN, STD, size, str(base))
