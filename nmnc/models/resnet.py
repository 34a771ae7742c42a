"""ResNet-18 layout adapted to 32x32 input (3x3 stem, no max-pool); each residual block is one
hidden layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import MODELS
from ._base import StagedNet, norm_layer, scaled


@dataclass(frozen=True)
class ResNetSettings:
    """Settings of ``resnet``."""

    width: float = 1.0  # multiplies the channel counts (64, 128, 256, 512)
    num_classes: int = 10
    norm: str = "bn"  # 'bn' or 'none'
    input_size: int = 32


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut: one residual block."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        bias = norm == "none"
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)
        self.bn1 = norm_layer(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=bias)
        self.bn2 = norm_layer(norm, cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=bias), norm_layer(norm, cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


@MODELS.register(
    "resnet",
    ResNetSettings,
    help="ResNet-18 for 32x32 input; hidden layers: stem and 8 residual blocks",
)
def resnet(s: ResNetSettings) -> StagedNet:
    """ResNet-18 for 32x32 input."""
    chans = [scaled(c, s.width) for c in (64, 128, 256, 512)]
    stages = [
        (
            "stem",
            nn.Sequential(
                nn.Conv2d(3, chans[0], 3, 1, 1, bias=s.norm == "none"),
                norm_layer(s.norm, chans[0]),
                nn.ReLU(),
            ),
        )
    ]
    cin = chans[0]
    for i, cout in enumerate(chans, start=1):
        for j in range(2):
            stride = 2 if (i > 1 and j == 0) else 1
            stages.append((f"layer{i}_{j}", BasicBlock(cin, cout, stride, s.norm)))
            cin = cout
    stages.append(
        ("fc", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, s.num_classes)))
    )
    return StagedNet(stages, s.input_size)
