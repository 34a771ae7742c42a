"""ResNet-18 with a hidden layer per convolution: ``resnet`` adapted to 32x32 input (3x3 stem, no
max-pool) and ``resnet18`` in the ImageNet layout (7x7 stride-2 stem and a 3x3 stride-2 max-pool,
224x224 input). Both share the residual stages and the stage names after the stem.

Each residual block is two stages, ``<block>a = relu(bn1(conv1(x)))`` and
``<block>b = relu(bn2(conv2(a)) + skip)``, where ``x`` is the block input and the skip path is
``x`` itself or, where the block changes shape, a third stage ``<block>s = bn(conv1x1(x))`` (a
hidden layer without a nonlinearity). Every convolution's output is a hidden layer, every stage
holds one weight layer, and each is trained from its own stage's output alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import MODELS
from ._base import StagedNet, norm_layer, scaled


@dataclass(frozen=True)
class ResNetSettings:
    """Settings of ``resnet`` (32x32 input)."""

    width: float = 1.0  # multiplies the channel counts (64, 128, 256, 512)
    num_classes: int = 10
    norm: str = "bn"  # 'bn' or 'none'
    input_size: int = 32


@dataclass(frozen=True)
class ResNet18Settings(ResNetSettings):
    """Settings of ``resnet18`` (ImageNet layout, 224x224 input)."""

    num_classes: int = 1000
    input_size: int = 224


def conv_stage(cin: int, cout: int, stride: int, norm: str) -> nn.Sequential:
    """3x3 convolution, norm and ReLU: the stem and each block's first stage."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=norm == "none"), norm_layer(norm, cout), nn.ReLU()
    )


class ResidualJoin(nn.Module):
    """A block's second stage: ``relu(bn2(conv2(a)) + skip)`` from its first stage's output
    ``a`` and the skip path (the block input, or the block's 1x1 shortcut stage)."""

    def __init__(self, cout: int, norm: str):
        super().__init__()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=norm == "none")
        self.bn2 = norm_layer(norm, cout)

    def forward(self, a: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """The block output from its first stage ``a`` and its skip path."""
        return torch.relu(self.bn2(self.conv2(a)) + skip)


def shortcut_stage(cin: int, cout: int, stride: int, norm: str) -> nn.Sequential:
    """The 1x1 convolution and norm that resize the skip path (no nonlinearity)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 1, stride, bias=norm == "none"), norm_layer(norm, cout)
    )


def residual_net(
    stem: nn.Module, width: float, num_classes: int, norm: str, input_size: int
) -> StagedNet:
    """The ``stem`` stage (mapping the image to 64 x width channels), four residual stages of two
    blocks each (64, 128, 256, 512 channels x width; the last three halve the resolution), and the
    read-out ``fc`` (global average pool and a linear map)."""
    chans = [scaled(c, width) for c in (64, 128, 256, 512)]
    stages = [("stem", stem)]
    sources = {}
    cin, prev = chans[0], "stem"
    for i, cout in enumerate(chans, start=1):
        for j in range(2):
            stride = 2 if (i > 1 and j == 0) else 1
            block = f"layer{i}_{j}"
            stages.append((f"{block}a", conv_stage(cin, cout, stride, norm)))
            skip = prev  # the block input skips the first stage...
            if stride != 1 or cin != cout:  # ...through a 1x1 convolution where shapes change
                skip = f"{block}s"
                stages.append((skip, shortcut_stage(cin, cout, stride, norm)))
                sources[skip] = (prev,)
            stages.append((f"{block}b", ResidualJoin(cout, norm)))
            sources[f"{block}b"] = (f"{block}a", skip)
            cin, prev = cout, f"{block}b"
    stages.append(
        ("fc", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)))
    )
    return StagedNet(stages, input_size, sources)


@MODELS.register(
    "resnet",
    ResNetSettings,
    help="ResNet-18 for 32x32 input; a hidden layer per convolution "
    "(stem, layer1_0a, layer1_0b .. layer2_0s (1x1 shortcuts) .. layer4_1b)",
)
def resnet(s: ResNetSettings) -> StagedNet:
    """ResNet-18 for 32x32 input, one stage per convolution: a 3x3 stem, no max-pool."""
    stem = conv_stage(3, scaled(64, s.width), 1, s.norm)
    return residual_net(stem, s.width, s.num_classes, s.norm, s.input_size)


@MODELS.register(
    "resnet18",
    ResNet18Settings,
    help="ResNet-18, ImageNet layout (7x7 stride-2 stem + 3x3 max-pool); "
    "a hidden layer per convolution, stages named as in resnet",
)
def resnet18(s: ResNet18Settings) -> StagedNet:
    """ResNet-18 in the ImageNet layout, one stage per convolution: the stem stage is the 7x7
    stride-2 convolution, norm, ReLU and 3x3 stride-2 max-pool (224 -> 56 pixels)."""
    c = scaled(64, s.width)
    stem = nn.Sequential(
        nn.Conv2d(3, c, 7, 2, 3, bias=s.norm == "none"),
        norm_layer(s.norm, c),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    )
    return residual_net(stem, s.width, s.num_classes, s.norm, s.input_size)
