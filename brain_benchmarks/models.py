"""What can be scored: a checkpoint, ``pixels``, or ``random:<arch>`` (an architecture at initialisation)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from nmnc.checkpoint import load_checkpoint, model_from_checkpoint, weights_hash
from nmnc.errors import NmncError
from nmnc.models import MODELS, build_model

CIFAR = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass
class ScoredModel:
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


def resolve_model(spec: str, resolver=None) -> ScoredModel:
    """Turn a model id into something we can extract from. ``resolver`` maps extra names (the zoo)."""
    if spec == "pixels":
        return ScoredModel("pixels", "pixels", "none", None, "pixels-64", ["pixels"], 64, (0, 0, 0), (1, 1, 1))
    if spec.startswith("random:"):
        arch, _, seed = spec[len("random:"):].partition("@")
        seed = int(seed or 0)
        MODELS.get(arch)
        torch.manual_seed(seed)
        net = build_model(arch).eval()
        mean, std = IMAGENET if net.input_size >= 100 else CIFAR
        return ScoredModel(spec, arch, "init", seed, weights_hash(net.state_dict()), list(net.hidden_layers), net.input_size, mean, std, net)
    if resolver is not None:
        found = resolver(spec)
        if found is not None:
            spec = str(found)
    path = Path(spec)
    if not path.exists():
        raise NmncError(f"unknown model '{spec}': give a checkpoint path (file or run folder), 'pixels', or 'random:<arch>' "
                        f"with arch one of {', '.join(MODELS.names())}")
    ckpt = load_checkpoint(path)
    net = model_from_checkpoint(ckpt)
    d = ckpt["data"]
    return ScoredModel(str(spec), ckpt["model"]["name"], ckpt["rule"]["name"], ckpt["config"].get("seed"),
                       weights_hash(ckpt["model_state"]), list(net.hidden_layers), d["input_size"], tuple(d["mean"]),
                       tuple(d["std"]), net, {"step": ckpt["step"], "checkpoint": str(path)})
