"""Model registry: ``build_model('cnn', width=0.5)``; ``MODELS.names()`` lists them.

Every model is a :class:`StagedNet`: an ordered list of named stages, one weight layer each,
whose outputs (all but the last, the read-out) are the hidden layers that learning rules perturb
and benchmarks record. A stage reads the previous stage's output or, through a skip connection,
earlier ones too (ResNet blocks).

BatchNorm and perturbation rules: a BatchNorm layer in training mode couples the examples of a
batch, so perturbing one copy would shift every other copy's statistics. Models therefore take
``norm='none'`` (the default for ``cnn``) or ``norm='bn'`` (the default for ``resnet``). Noise
rules run their perturbed passes with BatchNorm normalising by the clean pass's batch statistics
(``nmnc.engine.norm``: held fixed, running averages untouched) and take antithetic differences of
two such passes, so the estimate is the Jacobian of exactly the network the clean pass ran, while
the clean pass that produces the error and the updates runs in training mode.
"""

from __future__ import annotations

from .._registry import Registry

MODELS = Registry("model")

from . import alexnet, cnn, resnet, rnn  # noqa: E402,F401  (registration on import)
from ._base import StagedNet  # noqa: E402


def build_model(name: str, settings=None, **overrides) -> StagedNet:
    """Build a registered model from its settings dataclass (or overrides of the defaults)."""
    entry = MODELS.get(name)
    if settings is None:
        settings = MODELS.settings(name, overrides)
    model = entry.factory(settings)
    model.arch = name
    model.settings = settings
    return model


__all__ = ["MODELS", "StagedNet", "build_model"]
