"""Read-out only: the control for the noise rules. Hidden layers stay at initialisation; the
read-out is trained with the exact error, as the noise rules train theirs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..objective import loss
from . import RULES, Rule, StepResult


@dataclass(frozen=True)
class ReadoutSettings:
    """The read-out-only control has no settings."""


@RULES.register(
    "readout",
    ReadoutSettings,
    help="control: hidden layers fixed at initialisation, read-out trained with the exact error",
)
class Readout(Rule):
    """Only the read-out stage gets gradients; every hidden parameter keeps ``.grad = None``, so a
    standard optimizer (weight decay and momentum included) leaves it exactly as initialised."""

    def step(self, x, y, gen):
        with torch.no_grad():
            outs, _ = self.model.walk(x)
        h = outs[self.model.hidden_layers[-1]]
        logits = self.model.stage(self.model.stage_names[-1])(h)
        value = loss(logits, y)
        value.backward()
        return StepResult(value.detach(), logits.detach())
