"""Activations of a model's named layers for a stimulus set, cached on disk.

Images are preprocessed as the checkpoint was trained: resized to its input size and normalised
with its statistics. Features stream batch by batch into memory-mapped files, so memory stays
bounded for large stimulus sets; very wide layers can be reduced by spatial average pooling or a
seeded random projection (both are part of the cache key and recorded in results).
Cache: ``<cache>/activations/<weights hash>/<stimuli digest>/<layer><reduction>.npy`` — changed
weights have a new hash, so stale activations are never returned.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from model_zoo.plain import to_tensor
from nmnc.data import cache_dir
from nmnc.engine.taps import record

from .models import ScoredModel
from .stimuli import Stimuli


def reduction_tag(pool: str, max_features: int) -> str:
    """The cache-file suffix naming a feature reduction (pooling, projection)."""
    return (f"-pool{pool}" if pool != "none" else "") + (
        f"-proj{max_features}" if max_features else ""
    )


def preprocess(model: ScoredModel, images) -> torch.Tensor:
    """Images resized to the model's input size and normalised as in training: (B, 3, S, S); the
    same function every plugin and the Brain-Score route use (``model_zoo.plain.to_tensor``)."""
    return to_tensor(images, model.input_size, model.mean, model.std)


def _projection(layer: str, d: int, m: int) -> torch.Tensor:
    seed = int(hashlib.sha1(layer.encode()).hexdigest()[:8], 16)
    g = torch.Generator().manual_seed(seed)
    return torch.randn(d, m, generator=g) / m**0.5


def _reduce(h: torch.Tensor, pool: str, proj: torch.Tensor | None) -> torch.Tensor:
    if pool == "avg" and h.dim() == 4:
        h = h.mean((2, 3))
    h = h.flatten(1).float()
    return h @ proj if proj is not None else h


def extract(
    model: ScoredModel,
    stimuli: Stimuli,
    layers: list[str] | None = None,
    batch: int = 64,
    pool: str = "none",
    max_features: int = 0,
    use_cache: bool = True,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Features (N, d) per layer, in stimulus order."""
    layers = layers or model.layers
    tag = reduction_tag(pool, max_features)
    folder = cache_dir() / "activations" / model.hash / stimuli.digest
    paths = {layer: folder / f"{layer}{tag}.npy" for layer in layers}
    missing = [layer for layer in layers if not (use_cache and paths[layer].exists())]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        _run(model, stimuli, missing, paths, batch, pool, max_features, progress)
    return {layer: np.load(paths[layer], mmap_mode="r") for layer in layers}


@torch.no_grad()
def _run(model, stimuli, layers, paths, batch, pool, max_features, progress):
    N = len(stimuli)
    outs, tmps, projs = {}, {}, {}
    net = model.net
    bar = tqdm(
        total=N,
        desc=f"extract {model.arch} on {stimuli.name}",
        unit="img",
        disable=not progress,
        leave=False,
    )
    try:
        for start in range(0, N, batch):
            imgs = [stimuli.read(i) for i in range(start, min(N, start + batch))]
            x = preprocess(model, imgs)
            if net is None:  # pixels
                acts = {"pixels": x}
            else:
                with record(net, layers) as acts:
                    net(x)
            for layer in layers:
                h = acts[layer]
                if layer not in outs:
                    d = int(np.prod(h.shape[1:])) if pool == "none" or h.dim() != 4 else h.shape[1]
                    if max_features and d > max_features:
                        projs[layer] = _projection(layer, d, max_features)
                        d = max_features
                    tmps[layer] = paths[layer].with_name(
                        f".{paths[layer].stem}.{os.getpid()}.tmp.npy"
                    )
                    outs[layer] = np.lib.format.open_memmap(
                        tmps[layer], mode="w+", dtype=np.float32, shape=(N, d)
                    )
                outs[layer][start : start + len(imgs)] = _reduce(h, pool, projs.get(layer)).numpy()
            bar.update(len(imgs))
        for layer in layers:
            outs[layer].flush()
            del outs[layer]
            os.replace(tmps[layer], paths[layer])
    finally:
        bar.close()
        for t in tmps.values():
            Path(t).unlink(missing_ok=True)
