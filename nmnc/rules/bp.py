"""Backprop: exact gradients, the reference rule."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from . import RULES, Rule, StepResult


@dataclass(frozen=True)
class BPSettings:
    """Backprop has no settings."""

    pass


@RULES.register("bp", BPSettings, help="backpropagation (exact gradients)")
class BP(Rule):
    """Backpropagation: the exact gradient of the batch loss."""

    def step(self, x, y, gen):
        logits = self.model(x)
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        return StepResult(loss.detach(), logits.detach())
