"""Learning-rule registry. A rule owns its update step and leaves parameter gradients in ``.grad``
for a standard torch optimizer, so every rule trains (and later data-parallelises) the same way.

Adding a rule is one new file in this folder plus one import line below.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._registry import Registry
from ..engine.distributed import World

RULES = Registry("rule")


@dataclass
class StepResult:
    """What a rule's step reports: the clean loss and logits, perturbations spent, diagnostics."""

    loss: torch.Tensor  # scalar, detached: mean cross-entropy of the clean batch
    logits: torch.Tensor  # (B, n_o), detached, from the clean pass
    perturbations: int = 0  # perturbed forward passes spent on this batch (per example x examples)
    info: dict | None = None  # rule-specific diagnostics (floats)


class Rule:
    """Base class: ``step(x, y, gen)`` fills ``.grad`` of the model's parameters (this process's
    share of the batch; the trainer averages them over processes). ``gen`` is a
    ``torch.Generator`` or, in training, an :class:`~nmnc.engine.noise.ExampleNoise`."""

    name = ""
    world = World()  # the trainer's, under torchrun: rules that learn from activity gather it

    def __init__(self, model, settings):
        self.model = model
        self.settings = settings

    def step(self, x: torch.Tensor, y: torch.Tensor, gen) -> StepResult:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Plain tensors and types only (checkpoints load with ``weights_only=True``)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def build_rule(name: str, model, settings=None, **overrides) -> Rule:
    """Build a registered rule for ``model`` from its settings dataclass (or overrides of the
    defaults)."""
    entry = RULES.get(name)
    if settings is None:
        settings = RULES.settings(name, overrides)
    rule = entry.factory(model, settings)
    rule.name = name
    return rule


from . import bp, nmnc, readout, vnc  # noqa: E402,F401  (registration)

__all__ = ["RULES", "Rule", "StepResult", "build_rule"]
