"""AlexNet-style network for ImageNet-size input (224x224): five conv layers and two hidden fully
connected layers."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from . import MODELS
from ._base import StagedNet, norm_layer, scaled


@dataclass(frozen=True)
class AlexNetSettings:
    """Settings of ``alexnet``."""

    width: float = 1.0  # multiplies channels (64, 192, 384, 256, 256) and fc units (4096)
    num_classes: int = 1000
    norm: str = "none"
    input_size: int = 224


@MODELS.register(
    "alexnet", AlexNetSettings, help="AlexNet-style, 224x224 input; hidden layers conv1-5, fc6, fc7"
)
def alexnet(s: AlexNetSettings) -> StagedNet:
    """AlexNet-style network for 224x224 input."""
    c = [scaled(x, s.width) for x in (64, 192, 384, 256, 256)]
    fc = scaled(4096, s.width)
    bias = s.norm == "none"

    def conv(cin, cout, k, stride, pad, pool):
        layers = [
            nn.Conv2d(cin, cout, k, stride, pad, bias=bias),
            norm_layer(s.norm, cout),
            nn.ReLU(),
        ]
        if pool:
            layers.append(nn.MaxPool2d(3, 2))
        return nn.Sequential(*layers)

    stages = [
        ("conv1", conv(3, c[0], 11, 4, 2, pool=True)),
        ("conv2", conv(c[0], c[1], 5, 1, 2, pool=True)),
        ("conv3", conv(c[1], c[2], 3, 1, 1, pool=False)),
        ("conv4", conv(c[2], c[3], 3, 1, 1, pool=False)),
        ("conv5", nn.Sequential(conv(c[3], c[4], 3, 1, 1, pool=True), nn.AdaptiveAvgPool2d(6))),
        ("fc6", nn.Sequential(nn.Flatten(), nn.Linear(c[4] * 36, fc), nn.ReLU())),
        ("fc7", nn.Sequential(nn.Linear(fc, fc), nn.ReLU())),
        ("fc8", nn.Linear(fc, s.num_classes)),
    ]
    return StagedNet(stages, s.input_size)
