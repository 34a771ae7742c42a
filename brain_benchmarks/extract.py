"""Activations of a model's named layers for a stimulus set, cached on disk.

Images are preprocessed as the checkpoint was trained (``model_zoo.plain.to_tensor``, the one
preprocessing plugins and the Brain-Score route share). Features stream batch by batch into
memory-mapped files, so memory stays bounded for large stimulus sets. Wide layers can be reduced by
spatial average pooling, or by PCA fitted on a held-out image set (``basis_images``; the first
``max_features`` principal components, as Brain-Score's LayerPCA keeps 1,000 fitted on ImageNet).
Cache: ``<cache>/activations/<model key>/<stimuli digest>/<layer><reduction>.npy``; the model key
hashes everything that changes activations: the weights, the network definition, the
preprocessing and :data:`EXTRACTOR_VERSION`, so stale activations are never returned.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from model_zoo.plain import RESIZE, to_tensor
from nmnc.data import cache_dir
from nmnc.engine.taps import record
from nmnc.progress import tqdm

from .models import ScoredModel
from .stimuli import Stimuli

EXTRACTOR_VERSION = 2  # bump when extraction changes what a cached file holds
_BASES: dict[tuple, dict] = {}  # PCA bases of this process, by model key, images and size


def preprocess(model: ScoredModel, images) -> torch.Tensor:
    """Images resized to the model's input size and normalised as in training: (B, 3, S, S)."""
    return to_tensor(images, model.input_size, model.mean, model.std)


def model_key(model: ScoredModel) -> str:
    """A digest of everything about a model that changes its activations."""
    parts = [
        EXTRACTOR_VERSION,
        model.hash,
        model.arch,
        repr(model.net),
        model.input_size,
        tuple(model.mean),
        tuple(model.std),
        RESIZE,
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def reduction_tag(pool: str, max_features: int, basis_images: Stimuli | None = None) -> str:
    """The cache-file suffix naming a feature reduction (pooling, PCA on which images)."""
    tag = f"-pool{pool}" if pool != "none" else ""
    if max_features:
        tag += f"-pca{max_features}-{basis_images.digest[:8]}"
    return tag


def new_memmap(tmp: Path, path: Path, shape: tuple[int, int]) -> np.memmap:
    """A float32 ``.npy`` memory map at ``tmp`` (later renamed to ``path``) with every block
    allocated now: a full disk is a one-line error naming ``path``, not a SIGBUS when a page is
    first written. The caller removes ``tmp`` whatever happens."""
    from nmnc.io import writing

    with writing(path):
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
        finally:
            os.close(fd)
    return out


def extract(
    model: ScoredModel,
    stimuli: Stimuli,
    layers: list[str] | None = None,
    batch: int = 64,
    pool: str = "none",
    max_features: int = 0,
    basis_images: Stimuli | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Features (N, d) per layer, in stimulus order; layers wider than ``max_features`` are
    projected on their first ``max_features`` principal components over ``basis_images``."""
    if max_features and basis_images is None:
        raise ValueError("max_features needs basis_images: the held-out images PCA is fitted on")
    layers = layers or model.layers
    tag = reduction_tag(pool, max_features, basis_images)
    folder = cache_dir() / "activations" / model_key(model) / stimuli.digest
    paths = {layer: folder / f"{layer}{tag}.npy" for layer in layers}
    missing = [layer for layer in layers if not (use_cache and paths[layer].exists())]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        bases = {}
        if max_features:
            bases = pca_bases(model, basis_images, missing, max_features, batch, pool, progress)
        _run(model, stimuli, missing, paths, batch, pool, bases, progress)
    return {layer: np.load(paths[layer], mmap_mode="r") for layer in layers}


def _forward(model: ScoredModel, images, layers: list[str]) -> dict[str, torch.Tensor]:
    x = preprocess(model, images)
    if model.net is None:  # pixels
        return {"pixels": x}
    with record(model.net, layers) as acts:
        model.net(x)
    return dict(acts)


def _reduce(h: torch.Tensor, pool: str, basis: dict | None) -> torch.Tensor:
    if pool == "avg" and h.dim() == 4:
        h = h.mean((2, 3))
    h = h.flatten(1).float()
    return (h - basis["mean"]) @ basis["components"] if basis else h


@torch.no_grad()
def pca_bases(
    model: ScoredModel,
    images: Stimuli,
    layers: list[str],
    k: int,
    batch: int = 64,
    pool: str = "none",
    progress: bool = True,
) -> dict[str, dict | None]:
    """Per layer, the mean and first ``k`` principal axes (d, k) of its features over ``images``
    (None for a layer no wider than ``k``); kept in memory for this process."""
    key = (model_key(model), images.digest, k, pool)
    todo = [layer for layer in layers if (*key, layer) not in _BASES]
    if todo:
        feats = {layer: [] for layer in todo}
        n = len(images)
        bar = tqdm(
            total=n,
            desc=f"PCA basis on {images.name}",
            unit="img",
            disable=not progress,
            leave=False,
        )
        for start in range(0, n, batch):
            stop = min(n, start + batch)
            acts = _forward(model, [images.read(i) for i in range(start, stop)], todo)
            for layer in todo:
                feats[layer].append(_reduce(acts[layer], pool, None))
            bar.update(stop - start)
        bar.close()
        for layer in todo:
            X = torch.cat(feats.pop(layer)).double()
            _BASES[(*key, layer)] = _pca(X, k)
    return {layer: _BASES[(*key, layer)] for layer in layers}


def _pca(X: torch.Tensor, k: int) -> dict | None:
    """Mean and top-``k`` principal axes of the rows of X (N, d), from the N x N Gram matrix."""
    n, d = X.shape
    if d <= k:
        return None
    mean = X.mean(0)
    Xc = X - mean
    vals, vecs = torch.linalg.eigh(Xc @ Xc.T)
    keep = min(k, n - 1)
    vals, vecs = vals.flip(0)[:keep].clamp_min(1e-12), vecs.flip(1)[:, :keep]
    components = (Xc.T @ vecs) / vals.sqrt()  # orthonormal columns (d, keep)
    return {"mean": mean.float(), "components": components.float()}


@torch.no_grad()
def _run(model, stimuli, layers, paths, batch, pool, bases, progress):
    N = len(stimuli)
    outs, tmps = {}, {}
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
            acts = _forward(model, imgs, layers)
            for layer in layers:
                h = _reduce(acts[layer], pool, bases.get(layer))
                if layer not in outs:
                    tmps[layer] = paths[layer].with_name(
                        f".{paths[layer].stem}.{os.getpid()}.tmp.npy"
                    )
                    outs[layer] = new_memmap(tmps[layer], paths[layer], (N, h.shape[1]))
                outs[layer][start : start + len(imgs)] = h.numpy()
            bar.update(len(imgs))
        for layer in layers:
            outs[layer].flush()
            del outs[layer]
            os.replace(tmps[layer], paths[layer])
    finally:
        bar.close()
        for t in tmps.values():
            Path(t).unlink(missing_ok=True)
