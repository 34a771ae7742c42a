"""Stimulus sets: ordered images from a folder, a zip or an array, read lazily in batches."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nmnc.data.archive import check_member
from nmnc.errors import DataError

IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


@dataclass
class Stimuli:
    """``ids`` in response order; ``read(i)`` returns image i as RGB; ``digest`` keys caches."""

    name: str
    ids: list[str]
    read: Callable[[int], Image.Image]
    digest: str

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, idx) -> "Stimuli":
        idx = list(map(int, idx))
        h = hashlib.sha1((self.digest + ",".join(map(str, idx))).encode()).hexdigest()[:16]
        return Stimuli(
            f"{self.name}[{len(idx)}]", [self.ids[i] for i in idx], lambda i: self.read(idx[i]), h
        )


def _digest(parts) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
    return h.hexdigest()[:16]


def from_arrays(name: str, images: np.ndarray, ids: list[str] | None = None) -> Stimuli:
    """Images as uint8 (N, H, W, 3) or (N, H, W)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise DataError(
            f"{name}: stimulus arrays must be uint8 images (N, H, W[, 3]), got {images.dtype}"
        )
    ids = ids or [f"{i:05d}" for i in range(len(images))]
    return Stimuli(
        name, ids, lambda i: Image.fromarray(images[i]).convert("RGB"), _digest([images.tobytes()])
    )


def from_folder(folder: Path, order: list[str] | None = None, name: str | None = None) -> Stimuli:
    """Stimuli from image files in a folder, in ``order`` (default: sorted names)."""
    folder = Path(folder)
    files = (
        {p.name: p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXT}
        if folder.is_dir()
        else {}
    )
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_EXT)}) in {folder}")
    ids = _ordered(order, files, str(folder))
    paths = [files[i] for i in ids]
    digest = _digest(p.read_bytes() for p in paths)
    return Stimuli(
        name or folder.name, ids, lambda i: _open(paths[i].read_bytes(), paths[i]), digest
    )


def from_zip(path: Path, order: list[str] | None = None, name: str | None = None) -> Stimuli:
    """Stimuli from image members of a zip, read in place, in ``order`` (default: sorted names)."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(
            f"{path} is not a readable zip ({err}); replace it with an intact copy"
        ) from None
    members = {}
    for m in zf.namelist():
        check_member(m, path)
        base = Path(m).name
        if not m.lower().endswith(IMAGE_EXT) or base.startswith("."):
            continue
        if base in members:
            raise DataError(
                f"{path}: two images are named {base} ({members[base]} and {m}); stimulus ids are "
                "file names, so rename one of them"
            )
        members[base] = m
    if not members:
        raise DataError(f"no images in {path}")
    ids = _ordered(order, members, str(path))
    blobs = [zf.read(members[i]) for i in ids]  # compressed images are small; decoded lazily
    return Stimuli(name or path.stem, ids, lambda i: _open(blobs[i], path / ids[i]), _digest(blobs))


def _ordered(order, available: dict, where: str) -> list[str]:
    if order is None:
        return sorted(available)
    seen = set()
    for o in order:
        if o in seen:
            raise DataError(
                f"{where}: the 'stimuli' list names {o} twice; "
                "list each file once, in response order"
            )
        seen.add(o)
    missing = [o for o in order if o not in available]
    if missing:
        raise DataError(
            f"{where}: {len(missing)} listed stimuli are missing (first: {missing[0]}); "
            "the 'stimuli' list must name files that exist"
        )
    return list(order)


def _open(data: bytes, where) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data)).convert("RGB")
    except Exception as err:  # PIL raises several types for broken files
        raise DataError(
            f"cannot read image {where}: {err}; replace it with an intact copy"
        ) from None
