"""ResNet-18 layout adapted to 32x32 input (3x3 stem, no max-pool), with a hidden layer per
convolution.

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
    """Settings of ``resnet``."""

    width: float = 1.0  # multiplies the channel counts (64, 128, 256, 512)
    num_classes: int = 10
    norm: str = "bn"  # 'bn' or 'none'
    input_size: int = 32


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


@MODELS.register(
    "resnet",
    ResNetSettings,
    help="ResNet-18 for 32x32 input; a hidden layer per convolution "
    "(stem, layer1_0a, layer1_0b .. layer2_0s (1x1 shortcuts) .. layer4_1b)",
)
def resnet(s: ResNetSettings) -> StagedNet:
    """ResNet-18 for 32x32 input, one stage per convolution."""
    chans = [scaled(c, s.width) for c in (64, 128, 256, 512)]
    stages = [("stem", conv_stage(3, chans[0], 1, s.norm))]
    sources = {}
    cin, prev = chans[0], "stem"
    for i, cout in enumerate(chans, start=1):
        for j in range(2):
            stride = 2 if (i > 1 and j == 0) else 1
            block = f"layer{i}_{j}"
            stages.append((f"{block}a", conv_stage(cin, cout, stride, s.norm)))
            skip = prev  # the block input skips the first stage...
            if stride != 1 or cin != cout:  # ...through a 1x1 convolution where shapes change
                skip = f"{block}s"
                stages.append((skip, shortcut_stage(cin, cout, stride, s.norm)))
                sources[skip] = (prev,)
            stages.append((f"{block}b", ResidualJoin(cout, s.norm)))
            sources[f"{block}b"] = (f"{block}a", skip)
            cin, prev = cout, f"{block}b"
    stages.append(
        ("fc", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, s.num_classes)))
    )
    return StagedNet(stages, s.input_size, sources)
