"""What can be scored: a checkpoint (file or run folder), ``pixels``, ``random:<arch>[@seed]`` (an
architecture at initialisation), a zoo name (built from its recipe when no weights are here), or a
torchvision reference model: ``torchvision:<name>[@seed]`` at initialisation, or
``torchvision:<name>=<weights.pth>`` with a state dict the user has (nothing is downloaded)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nmnc.checkpoint import load_checkpoint, load_tensors, weights_hash
from nmnc.data.unpickle import code_names
from nmnc.errors import DataError, NmncError, UnknownNameError
from nmnc.models import MODELS, build_model

CIFAR = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# What 'pixels' is: images resized (bicubic, as extract.preprocess does) to 64x64 RGB in [0, 1].
PIXELS = {"input_size": 64, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "resize": "bicubic"}
# Reference models (calibration points), recorded at the layers Brain-Score's own plugins use:
# AlexNet's pooling and ReLU outputs (brainscore_vision/models/alexnet), ResNet-18's stages.
TORCHVISION = {
    "alexnet": [
        "features.2",
        "features.5",
        "features.7",
        "features.9",
        "features.12",
        "classifier.2",
        "classifier.5",
    ],
    "resnet18": ["maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"],
}
TORCHVISION_HEAD = {"alexnet": "classifier.6.weight", "resnet18": "fc.weight"}  # sets the classes
TORCHVISION_SIZE = 224


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


def _seed(text: str, spec: str, example: str) -> int:
    """The seed after '@' in ``spec``: digits 0-9 below 2**63 (what torch.manual_seed takes)."""
    if not (text.isascii() and text.isdigit()) or int(text) >= 2**63:
        raise NmncError(
            f"model '{spec}': the seed after '@' must be an integer, e.g. {example} (0 to 2**63-1)"
        )
    return int(text)


def _random_spec(spec: str) -> tuple[str, int]:
    """``random:cnn@3`` -> ('cnn', 3); a one-line error for an unknown architecture or a bad
    seed."""
    arch, at, seed = spec[len("random:") :].partition("@")
    if arch in MODELS.names(kind="recurrent"):
        raise NmncError(
            f"{spec}: {arch} is a recurrent model and takes no images; give an image "
            f"architecture ({', '.join(MODELS.names(kind=''))})"
        )
    if arch not in MODELS.names(kind=""):
        raise UnknownNameError(
            "architecture",
            arch,
            MODELS.names(kind=""),
            "write random:<arch> or random:<arch>@<seed>",
        )
    return arch, _seed(seed, spec, f"random:{arch}@1") if at else 0


def _torchvision_spec(spec: str) -> tuple[str, int, Path | None]:
    """``torchvision:resnet18@3`` -> ('resnet18', 3, None); ``torchvision:resnet18=W.pth`` ->
    ('resnet18', 0, Path('W.pth')); one-line errors for anything else."""
    head, eq, path = spec[len("torchvision:") :].partition("=")
    name, at, seed = head.partition("@")
    if name not in TORCHVISION:
        raise UnknownNameError(
            "torchvision model",
            name,
            TORCHVISION,
            "write torchvision:<name>[@seed], or torchvision:<name>=<state dict file>",
        )
    if eq and (at or not path):
        raise NmncError(
            f"model '{spec}': give torchvision:{name}=<state dict file> (pretrained weights) or "
            f"torchvision:{name}@<seed> (initialisation), not both and not an empty path"
        )
    return (
        name,
        _seed(seed, spec, f"torchvision:{name}@1") if at else 0,
        (Path(path).expanduser() if eq else None),
    )


def _torchvision_net(name: str, classes: int = 1000) -> torch.nn.Module:
    import torchvision.models

    return getattr(torchvision.models, name)(weights=None, num_classes=classes)


def _torchvision_weights(name: str, path: Path, spec: str) -> tuple[dict, int]:
    """The state dict in ``path`` checked against torchvision's ``name`` (layer names and
    shapes), with its number of classes; nothing is built."""
    fix = (
        f"save the weights with torch.save(model.state_dict(), path) for torchvision.models.{name}"
    )
    if not path.is_file():
        raise DataError(f"model '{spec}': no weights file {path}; {fix}")
    try:
        state = load_tensors(path)
    except Exception as err:  # torch.load raises many types for files it cannot read
        code = code_names(path)
        if code:
            raise DataError(
                f"{path} is a pickle that names {', '.join(code[:3])}: code, not weights; nothing "
                f"in it was run; delete it and {fix}"
            ) from None
        why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path} cannot be read by torch.load ({why}); {fix}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(
            f"{path} holds a {type(state).__name__}, not a state dict of tensors; {fix}"
        )
    head = state.get(TORCHVISION_HEAD[name])
    classes = int(head.shape[0]) if head is not None and head.dim() == 2 else 1000
    with torch.device("meta"):  # names and shapes only: no memory, no initialisation
        want = _torchvision_net(name, classes).state_dict()
    missing = [k for k in want if k not in state and not k.endswith("num_batches_tracked")]
    extra = [k for k in state if k not in want]
    wrong = [k for k in want if k in state and state[k].shape != want[k].shape]
    if missing or extra or wrong:
        parts = [
            f"{len(keys)} {what} (first: {keys[0]})"
            for keys, what in ((missing, "missing"), (extra, "unexpected"), (wrong, "misshapen"))
            if keys
        ]
        raise DataError(f"{path} does not fit torchvision {name}: {', '.join(parts)} keys; {fix}")
    return state, classes


def check_model(spec: str, run: dict | None = None) -> None:
    """Fail at once, with one line, on a model id that cannot be resolved, or on build settings
    (``run``) a zoo model's recipe refuses (nothing is built or loaded)."""
    if spec.startswith("random:"):
        _random_spec(spec)
        return
    if spec.startswith("torchvision:"):
        name, _, path = _torchvision_spec(spec)
        if path is not None:
            _torchvision_weights(name, path, spec)  # read and checked before any work
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
    known = ["pixels"] + [f"random:{a}" for a in MODELS.names(kind="")] + _zoo_names().names()
    known += [f"torchvision:{name}" for name in TORCHVISION]
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


def torchvision_model(spec: str) -> ScoredModel:
    """A torchvision reference model: at initialisation with a seed (rule 'reference'), or with the
    user's pretrained state dict (rule 'pretrained'); ImageNet preprocessing at 224 px."""
    name, seed, path = _torchvision_spec(spec)
    if path is None:
        torch.manual_seed(seed)
        net = _torchvision_net(name)
    else:
        state, classes = _torchvision_weights(name, path, spec)
        net = _torchvision_net(name, classes)
        net.load_state_dict(state)
    net.eval()
    return ScoredModel(
        spec,
        f"{name}-tv",
        "reference" if path is None else "pretrained",
        seed if path is None else None,
        weights_hash(net.state_dict()),
        list(TORCHVISION[name]),
        TORCHVISION_SIZE,
        IMAGENET[0],
        IMAGENET[1],
        net,
        {"torchvision": name} if path is None else {"torchvision": name, "weights": str(path)},
    )


def from_checkpoint(path: str | Path, id: str | None = None) -> ScoredModel:
    """A trained model rebuilt from its checkpoint alone, with its training preprocessing."""
    ckpt = load_checkpoint(path)
    ckpt.require_images("scoring against visual cortex (it takes no images)")
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
    if spec.startswith("torchvision:"):
        return torchvision_model(spec)
    if spec in _zoo_names():
        from model_zoo import ensure_weights

        path = ensure_weights(spec, build=build, sets=run, progress=progress, data_root=data_root)
        return from_checkpoint(path, spec)
    return from_checkpoint(spec)
