"""A small generated ImageFolder of real JPEG files, for tests and loader benchmarks:
``make_image_folder(root)`` writes ``root/train/<class>/*.JPEG`` and ``root/val/<class>/*.JPEG``."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_image_folder(
    root: str | Path,
    classes: int = 3,
    per_class: int = 4,
    size: tuple[int, int] = (224, 224),
    seed: int = 0,
    quality: int = 90,
) -> Path:
    """Write ``per_class`` JPEGs of ``size`` (width, height) for each of ``classes`` classes
    (``c000``, ``c001``, ...) in ``root/train`` and in ``root/val``; returns ``root``.

    Each image is a smooth random colour field tinted by its class, plus pixel noise, so the files
    compress and decode about as photographs do (about 90 kB at 500x375 and quality 90; ImageNet's
    average is about 110 kB); the content depends on ``seed`` alone.
    """
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    w, h = size
    tints = rng.uniform(40, 215, (classes, 3))
    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"c{c:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for j in range(per_class):
                coarse = rng.normal(tints[c], 50, (6, 8, 3)).clip(0, 255).astype(np.uint8)
                field = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC))
                pixels = field + rng.normal(0, 18, (h, w, 3))
                image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
                image.save(folder / f"{split}_{c:03d}_{j:04d}.JPEG", quality=quality)
    return root
