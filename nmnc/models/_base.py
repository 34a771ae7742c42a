"""The shape every model shares: named stages run in order (:class:`StagedNet`), width scaling
and norm layers."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UnknownNameError


def scaled(channels: int, width: float) -> int:
    """Channel count under a width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))


def norm_layer(norm: str, channels: int, dims: int = 2) -> nn.Module:
    """BatchNorm (``bn``) or nothing (``none``) after a layer of ``channels``."""
    if norm == "bn":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
    if norm == "none":
        return nn.Identity()
    raise UnknownNameError("norm", norm, ["bn", "none"])


class StagedNet(nn.Module):
    """A feed-forward network as named stages run in order.

    The output of every stage except the last is a hidden layer ``h_l`` (after its nonlinearity);
    the last stage is the read-out producing logits. ``forward_from(layer, h)`` runs the network
    above ``layer``: the ``f_{>l}`` of the noise-correlation rules.
    """

    input_size: int = 32

    def __init__(self, stages: list[tuple[str, nn.Module]], input_size: int):
        super().__init__()
        for name, module in stages:
            self.add_module(name, module)
        self.stage_names = [name for name, _ in stages]
        self.input_size = input_size

    @property
    def hidden_layers(self) -> list[str]:
        return self.stage_names[:-1]

    def stage(self, name: str) -> nn.Module:
        if name not in self.stage_names:
            raise UnknownNameError("layer", name, self.stage_names)
        return getattr(self, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def walk(
        self, x: torch.Tensor, detach_inputs: bool = False
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Every hidden layer's activity and the logits, stage by stage.

        With ``detach_inputs`` each stage receives its input detached, so the autograd graph of a
        stage's output reaches only that stage's own parameters (what local rules need).
        """
        outs, h = {}, x
        for name in self.stage_names[:-1]:
            h = getattr(self, name)(h.detach() if detach_inputs else h)
            outs[name] = h
        logits = getattr(self, self.stage_names[-1])(h.detach() if detach_inputs else h)
        return outs, logits

    def forward_from(self, layer: str, h: torch.Tensor) -> torch.Tensor:
        """Logits from the activity ``h`` of hidden layer ``layer`` (stages above it only)."""
        self.stage(layer)  # validates the name
        start = self.stage_names.index(layer) + 1
        for name in self.stage_names[start:]:
            h = getattr(self, name)(h)
        return h

    def layer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-example shape of every hidden layer's activity, from one dummy forward."""
        x = torch.zeros(
            1, 3, self.input_size, self.input_size, device=next(self.parameters()).device
        )
        was_training = self.training
        self.eval()
        with torch.no_grad():
            outs, _ = self.walk(x)
        self.train(was_training)
        return {name: tuple(h.shape[1:]) for name, h in outs.items()}
