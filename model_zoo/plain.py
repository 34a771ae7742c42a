"""Plain-torch pieces a Brain-Score plugin ships with it (this file is copied into every generated
plugin as ``network.py``, so it imports only the standard library, torch, numpy and PIL, never
nmnc).

- ``to_tensor`` is the one image preprocessing of the project: own extraction
  (``brain_benchmarks.extract``), the Brain-Score route (``brain_benchmarks.brainscore_adapter``)
  and every plugin resize and normalise with it, so the three see the same pixels;
  ``load_preprocess`` is the same for image files, as Brain-Score's PytorchWrapper takes it.
- ``cnn``, ``resnet``, ``resnet18`` and ``alexnet`` rebuild nmnc's architectures with the same
  module names, so a plugin loads nmnc's state dict strictly and Brain-Score's forward hooks on a
  hidden layer's name record what nmnc records (tests/test_plugin.py checks every registered
  architecture).
- ``fetch_weights`` downloads a weights file with a timeout and keeps it only when its SHA-256
  matches; ``load_network`` rebuilds the network from a slim nmnc checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

RESIZE = "bicubic"  # PIL's bicubic filter on the RGB image, to input_size x input_size
INPUT = "input"  # the source name of the network input


# ---- preprocessing ---------------------------------------------------------------------------
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


# ---- architectures ---------------------------------------------------------------------------
def scaled(channels: int, width: float) -> int:
    """Channel count under a width multiplier (at least 1), as nmnc scales it."""
    return max(1, int(round(channels * width)))


def norm_layer(norm: str, channels: int) -> nn.Module:
    """BatchNorm (``bn``) or nothing (``none``) after a layer of ``channels``."""
    if norm == "bn":
        return nn.BatchNorm2d(channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{norm}'; choose 'bn' or 'none'")


class StagedNetwork(nn.Module):
    """Named stages run in order; a stage reads the previous one unless ``sources`` names what it
    reads (earlier stages or ``'input'``: skip connections). Every stage but the last (the
    read-out) is a hidden layer, recorded by a forward hook on the module of that name."""

    def __init__(
        self, stages: list[tuple[str, nn.Module]], sources: dict[str, tuple[str, ...]] | None = None
    ):
        super().__init__()
        for name, module in stages:
            self.add_module(name, module)
        self.stage_names = [name for name, _ in stages]
        given = dict(sources or {})
        self.sources = {
            name: tuple(given.get(name, (self.stage_names[i - 1] if i else INPUT,)))
            for i, name in enumerate(self.stage_names)
        }

    @property
    def hidden_layers(self) -> list[str]:
        """Names of the hidden layers: every stage but the read-out, in network order."""
        return self.stage_names[:-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for inputs ``x``."""
        acts = {INPUT: x}
        for name in self.stage_names:
            acts[name] = getattr(self, name)(*(acts[s] for s in self.sources[name]))
        return acts[self.stage_names[-1]]


def cnn(width: float = 1.0, num_classes: int = 10, norm: str = "none", input_size: int = 32):
    """nmnc's small CIFAR-10 CNN: conv1-conv4 (the last three max-pooled) and the read-out fc."""
    chans = [scaled(c, width) for c in (16, 32, 64, 128)]

    def conv(cin, cout, pool):
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=norm == "none")]
        layers += [norm_layer(norm, cout), nn.ReLU()]
        return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))

    side = input_size // 8
    return StagedNetwork(
        [
            ("conv1", conv(3, chans[0], pool=False)),
            ("conv2", conv(chans[0], chans[1], pool=True)),
            ("conv3", conv(chans[1], chans[2], pool=True)),
            ("conv4", conv(chans[2], chans[3], pool=True)),
            ("fc", nn.Sequential(nn.Flatten(), nn.Linear(chans[3] * side * side, num_classes))),
        ]
    )


class ResidualJoin(nn.Module):
    """A residual block's second stage: ``relu(bn2(conv2(a)) + skip)``."""

    def __init__(self, cout: int, norm: str):
        super().__init__()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=norm == "none")
        self.bn2 = norm_layer(norm, cout)

    def forward(self, a: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """The block output from its first stage ``a`` and its skip path."""
        return torch.relu(self.bn2(self.conv2(a)) + skip)


def _conv(cin: int, cout: int, k: int, stride: int, norm: str) -> nn.Sequential:
    """A k x k convolution (padding k // 2), norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=norm == "none"),
        norm_layer(norm, cout),
        nn.ReLU(),
    )


def residual_net(stem: nn.Module, width: float, num_classes: int, norm: str) -> StagedNetwork:
    """nmnc's residual stages after a ``stem`` stage, one stage per convolution:
    ``layer<i>_<j>a``, ``layer<i>_<j>s`` (1x1 shortcut where shapes change), ``layer<i>_<j>b``
    (the join), then the read-out fc."""
    chans = [scaled(c, width) for c in (64, 128, 256, 512)]
    stages, sources = [("stem", stem)], {}
    cin, prev = chans[0], "stem"
    for i, cout in enumerate(chans, start=1):
        for j in range(2):
            stride = 2 if (i > 1 and j == 0) else 1
            block = f"layer{i}_{j}"
            stages.append((f"{block}a", _conv(cin, cout, 3, stride, norm)))
            skip = prev
            if stride != 1 or cin != cout:
                skip = f"{block}s"
                shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=norm == "none"), norm_layer(norm, cout)
                )
                stages.append((skip, shortcut))
                sources[skip] = (prev,)
            stages.append((f"{block}b", ResidualJoin(cout, norm)))
            sources[f"{block}b"] = (f"{block}a", skip)
            cin, prev = cout, f"{block}b"
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))
    return StagedNetwork([*stages, ("fc", head)], sources)


def resnet(width: float = 1.0, num_classes: int = 10, norm: str = "bn", input_size: int = 32):
    """nmnc's ResNet-18 for 32x32 input: a 3x3 stem, no max-pool."""
    return residual_net(_conv(3, scaled(64, width), 3, 1, norm), width, num_classes, norm)


def resnet18(width: float = 1.0, num_classes: int = 1000, norm: str = "bn", input_size: int = 224):
    """nmnc's ResNet-18 in the ImageNet layout: a 7x7 stride-2 stem with a 3x3 stride-2 max-pool."""
    stem = nn.Sequential(*_conv(3, scaled(64, width), 7, 2, norm), nn.MaxPool2d(3, 2, 1))
    return residual_net(stem, width, num_classes, norm)


def alexnet(width: float = 1.0, num_classes: int = 1000, norm: str = "none", input_size: int = 224):
    """nmnc's AlexNet-style network for 224x224 input: conv1-conv5, fc6, fc7, read-out fc8."""
    c = [scaled(x, width) for x in (64, 192, 384, 256, 256)]
    fc = scaled(4096, width)

    def conv(cin, cout, k, stride, pad, pool):
        layers = [nn.Conv2d(cin, cout, k, stride, pad, bias=norm == "none")]
        layers += [norm_layer(norm, cout), nn.ReLU()]
        return nn.Sequential(*layers, *([nn.MaxPool2d(3, 2)] if pool else []))

    return StagedNetwork(
        [
            ("conv1", conv(3, c[0], 11, 4, 2, pool=True)),
            ("conv2", conv(c[0], c[1], 5, 1, 2, pool=True)),
            ("conv3", conv(c[1], c[2], 3, 1, 1, pool=False)),
            ("conv4", conv(c[2], c[3], 3, 1, 1, pool=False)),
            ("conv5", nn.Sequential(conv(c[3], c[4], 3, 1, 1, pool=True), nn.AdaptiveAvgPool2d(6))),
            ("fc6", nn.Sequential(nn.Flatten(), nn.Linear(c[4] * 36, fc), nn.ReLU())),
            ("fc7", nn.Sequential(nn.Linear(fc, fc), nn.ReLU())),
            ("fc8", nn.Linear(fc, num_classes)),
        ]
    )


ARCHITECTURES = {"cnn": cnn, "resnet": resnet, "resnet18": resnet18, "alexnet": alexnet}


def build(name: str, settings: dict) -> StagedNetwork:
    """The architecture ``name`` with the settings a checkpoint stores (width, norm, ...)."""
    if name not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture '{name}'; this file builds {', '.join(ARCHITECTURES)}"
        )
    try:
        return ARCHITECTURES[name](**settings)
    except TypeError as err:
        raise ValueError(
            f"settings {sorted(settings)} do not fit architecture '{name}' ({err})"
        ) from None


# ---- weights ---------------------------------------------------------------------------------
class WeightsError(RuntimeError):
    """Weights that could not be downloaded, or whose SHA-256 is not the expected one."""


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read in 1 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verified(path: str | os.PathLike, sha256: str) -> Path:
    """``path`` when its SHA-256 is ``sha256``; a WeightsError otherwise."""
    got = file_sha256(path)
    if got != sha256:
        raise WeightsError(
            f"weights {path} have SHA-256 {got}, expected {sha256}; replace the file"
        )
    return Path(path)


def fetch_weights(url: str, sha256: str, dest: str | os.PathLike, timeout: float = 60.0) -> Path:
    """``dest`` holding the weights with SHA-256 ``sha256``: kept from an earlier call, or
    downloaded from ``url`` into a temporary file beside it (``timeout`` seconds for each read
    and for the whole transfer), checked, and only then renamed into place. A wrong hash or a
    failed transfer keeps nothing."""
    dest = Path(dest)
    if dest.exists():
        if file_sha256(dest) == sha256:
            return dest
        dest.unlink()  # a damaged or stale file is of no use to anyone
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    deadline = time.monotonic() + timeout
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"transfer took over {timeout:g} s")
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != sha256:
            raise WeightsError(
                f"weights downloaded from {url} have SHA-256 {h.hexdigest()}, expected {sha256}; "
                "nothing was kept (the file at the URL changed or the transfer broke)"
            )
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise WeightsError(
            f"could not download weights from {url} ({reason}); check the URL, or put the file "
            f"at {dest}"
        ) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def load_network(path: str | os.PathLike) -> tuple[StagedNetwork, dict]:
    """The network of a slim nmnc checkpoint (eval mode), its state dict loaded strictly, and the
    checkpoint itself (plain tensors and types: ``torch.load(weights_only=True)``)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    net = build(payload["model"]["name"], dict(payload["model"]["settings"]))
    net.load_state_dict(payload["model_state"], strict=True)
    return net.eval(), payload
