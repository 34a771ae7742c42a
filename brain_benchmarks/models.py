"""What can be scored: a checkpoint (file or run folder), ``pixels``, ``random:<arch>[@seed]`` (an
architecture at initialisation) or a zoo name (built from its recipe when no weights are here)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nmnc.checkpoint import load_checkpoint, weights_hash
from nmnc.errors import NmncError, UnknownNameError
from nmnc.models import MODELS, build_model

CIFAR = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# What 'pixels' is: images resized (bicubic, as extract.preprocess does) to 64x64 RGB in [0, 1].
PIXELS = {"input_size": 64, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "resize": "bicubic"}


@dataclass
class ScoredModel:
    """A network (or pixels) with its identity and the preprocessing it was trained with."""

    id: str  # what the user gave
    arch: str
    rule: str
    seed: int | None
    hash: str  # content hash of the weights (caches and identifiers key on it)
    layers: list[str]
    input_size: int
    mean: tuple
    std: tuple
    net: torch.nn.Module | None = None  # None for pixels
    meta: dict = field(default_factory=dict)


def _zoo_names():
    from model_zoo.registry import ZOO

    return ZOO


def zoo_name(spec: str) -> bool:
    """Whether ``spec`` names a zoo model."""
    return spec in _zoo_names()


def _random_spec(spec: str) -> tuple[str, int]:
    """``random:cnn@3`` -> ('cnn', 3); a one-line error for an unknown architecture or a bad
    seed."""
    arch, at, seed = spec[len("random:") :].partition("@")
    if arch not in MODELS:
        raise UnknownNameError(
            "architecture", arch, MODELS.names(), "write random:<arch> or random:<arch>@<seed>"
        )
    if at and not seed.isdigit():
        raise NmncError(
            f"model '{spec}': the seed after '@' must be an integer, e.g. random:{arch}@1"
        )
    return arch, int(seed or 0)


def check_model(spec: str, run: dict | None = None) -> None:
    """Fail at once, with one line, on a model id that cannot be resolved, or on build settings
    (``run``) a zoo model's recipe refuses (nothing is built or loaded)."""
    if spec.startswith("random:"):
        _random_spec(spec)
        return
    if spec in _zoo_names():
        from model_zoo.build import BuildConfig, train_config

        train_config(BuildConfig(spec, sets=dict(run or {})))
        return
    if spec == "pixels":
        return
    if Path(spec).exists():
        load_checkpoint(spec)  # a file that is no nmnc checkpoint fails here, before any work
        return
    known = ["pixels"] + [f"random:{a}" for a in MODELS.names()] + _zoo_names().names()
    raise UnknownNameError("model", spec, known, "or give a checkpoint path (file or run folder)")


def pixels() -> ScoredModel:
    """Raw pixels as features; the cache key names the preprocessing, so changing it re-extracts."""
    key = hashlib.sha1(json.dumps(PIXELS, sort_keys=True).encode()).hexdigest()[:12]
    return ScoredModel(
        "pixels",
        "pixels",
        "none",
        None,
        f"pixels-{key}",
        ["pixels"],
        PIXELS["input_size"],
        PIXELS["mean"],
        PIXELS["std"],
        None,
        {"preprocessing": PIXELS},
    )


def random_model(spec: str) -> ScoredModel:
    """An architecture at initialisation with the given seed (default 0)."""
    arch, seed = _random_spec(spec)
    torch.manual_seed(seed)
    net = build_model(arch).eval()
    mean, std = IMAGENET if net.input_size >= 100 else CIFAR
    return ScoredModel(
        spec,
        arch,
        "init",
        seed,
        weights_hash(net.state_dict()),
        list(net.hidden_layers),
        net.input_size,
        mean,
        std,
        net,
    )


def from_checkpoint(path: str | Path, id: str | None = None) -> ScoredModel:
    """A trained model rebuilt from its checkpoint alone, with its training preprocessing."""
    ckpt = load_checkpoint(path)
    net = ckpt.build_model()
    return ScoredModel(
        id or str(path),
        ckpt.arch,
        ckpt.rule,
        ckpt.seed,
        ckpt.weights_hash,
        list(net.hidden_layers),
        ckpt.input_size,
        ckpt.mean,
        ckpt.std,
        net,
        {"step": ckpt.step, "checkpoint": str(ckpt.path)},
    )


def resolve_model(
    spec: str,
    build: bool = True,
    run: dict | None = None,
    progress: bool = True,
    data_root: str | None = None,
) -> ScoredModel:
    """Turn a model id into something to extract from.

    A zoo name without weights is built from its recipe (``run`` settings on top; ``data_root``
    holds its training data), or is a one-line error with ``build=False``.
    """
    check_model(spec)
    if spec == "pixels":
        return pixels()
    if spec.startswith("random:"):
        return random_model(spec)
    if spec in _zoo_names():
        from model_zoo import ensure_weights

        path = ensure_weights(spec, build=build, sets=run, progress=progress, data_root=data_root)
        return from_checkpoint(path, spec)
    return from_checkpoint(spec)
