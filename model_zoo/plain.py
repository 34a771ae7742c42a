"""Plain-torch pieces a Brain-Score plugin ships with it (this file is copied into every generated
plugin, so it imports only torch, numpy and PIL, never nmnc).

``to_tensor`` is the one image preprocessing of the project: own extraction
(``brain_benchmarks.extract``), the Brain-Score route (``brain_benchmarks.brainscore_adapter``) and
every plugin resize and normalise with it, so the three see the same pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

RESIZE = "bicubic"  # PIL's bicubic filter on the RGB image, to input_size x input_size


def to_tensor(images, size: int, mean, std) -> torch.Tensor:
    """PIL images resized (bicubic) to ``size`` x ``size`` and normalised: (B, 3, size, size)."""
    arr = np.stack(
        [
            np.asarray(im.convert("RGB").resize((size, size), resample=Image.BICUBIC))
            for im in images
        ]
    )
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255)
    m = torch.tensor(tuple(mean), dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(tuple(std), dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


def load_preprocess(paths, image_size: int, mean, std, **_) -> np.ndarray:
    """Image files as Brain-Score's PytorchWrapper takes them (its ``preprocessing`` argument):
    the same pixels as :func:`to_tensor`, as a float32 array (B, 3, S, S)."""
    images = []
    for p in paths:
        with Image.open(p) as im:
            images.append(im.convert("RGB"))
    return to_tensor(images, image_size, mean, std).numpy()
