"""Backprop: exact gradients, the reference rule."""

from __future__ import annotations

from dataclasses import dataclass

from ..objective import loss
from . import RULES, Rule, StepResult


@dataclass(frozen=True)
class BPSettings:
    """Backprop has no settings."""

    pass


@RULES.register("bp", BPSettings, help="backpropagation (exact gradients)")
class BP(Rule):
    """Backpropagation: the exact gradient of the batch loss (through time for recurrent
    models: BPTT)."""

    def step(self, x, y, gen):
        logits = self.model(x)
        value = loss(logits, y)
        value.backward()
        return StepResult(value.detach(), logits.detach())
