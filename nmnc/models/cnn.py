"""A small CIFAR-10 CNN: four conv layers (the last three followed by 2x2 max-pooling) and a
linear read-out."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from . import MODELS
from ._base import StagedNet, norm_layer, scaled


@dataclass(frozen=True)
class CNNSettings:
    """Settings of ``cnn``."""

    width: float = 1.0  # multiplies every layer's channel count (16, 32, 64, 128)
    num_classes: int = 10
    norm: str = "none"  # 'none' or 'bn'
    input_size: int = 32


@MODELS.register(
    "cnn", CNNSettings, help="small CIFAR CNN, 4 conv layers (16-32-64-128 channels x width)"
)
def cnn(s: CNNSettings) -> StagedNet:
    """The small CIFAR-10 CNN."""
    chans = [scaled(c, s.width) for c in (16, 32, 64, 128)]

    def conv(cin, cout, pool):
        layers = [
            nn.Conv2d(cin, cout, 3, padding=1, bias=s.norm == "none"),
            norm_layer(s.norm, cout),
            nn.ReLU(),
        ]
        if pool:
            layers.append(nn.MaxPool2d(2))
        return nn.Sequential(*layers)

    side = s.input_size // 8
    stages = [
        ("conv1", conv(3, chans[0], pool=False)),
        ("conv2", conv(chans[0], chans[1], pool=True)),
        ("conv3", conv(chans[1], chans[2], pool=True)),
        ("conv4", conv(chans[2], chans[3], pool=True)),
        ("fc", nn.Sequential(nn.Flatten(), nn.Linear(chans[3] * side * side, s.num_classes))),
    ]
    return StagedNet(stages, s.input_size)
