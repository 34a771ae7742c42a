"""VNC, vanilla noise correlation (node perturbation): white noise on every unit of a layer.

``vnc`` is energy-matched to NMNC (per-unit variance sigma^2 k / n, so its total noise energy per
perturbation equals NMNC's at k = ``match_k``, 32 = NMNC's default k: set ``match_k`` to NMNC's k
when comparing at another k), as the design notes and the same lab's reimplementation do;
``vnc-unmatched`` gives every unit std sigma (n / k times NMNC's energy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..engine.noise import normal
from ..errors import NmncError
from . import RULES
from ._noise import NoiseRule, check_noise_settings, unit_sigma


@dataclass(frozen=True)
class VNCSettings:
    """Settings of VNC; units in the comments."""

    sigma: float = 0.05  # noise std per unit, in units of post-ReLU activity
    P: int = 16  # perturbations per example and layer
    antithetic: bool = (
        True  # f(h+xi) - f(h-xi): finite-difference bias O(sigma^2) instead of O(sigma)
    )
    form: str = "jacobian"  # 'jacobian' (dy . e) or 'loss' (scalar loss change)
    mode: str = "layerwise"  # 'layerwise' (one layer at a time) or 'all' (all layers in one pass)
    # recurrent models: 'all' (every step perturbed in one rollout per draw) or 'step' (one step
    # at a time, about (T + 1) / 2 rollouts per draw; see nmnc/engine/through_time.py)
    time: str = "all"
    layers: str = "all"  # 'all' or comma-separated hidden layers; others are not trained
    # >0: per-unit std sigma*sqrt(match_k/n), the total noise energy of NMNC at k = match_k
    # (the default, NMNC's default k); 0: per-unit std sigma (rule 'vnc-unmatched')
    match_k: int = 32
    max_batch: int = 4096  # perturbed copies per forward pass (memory bound only)
    feedback: str = "example"  # 'example' (per-example estimate) or 'amortised' (averaged J_hat)
    feedback_decay: float = 0.9  # amortised: J_bar <- decay * J_bar + (1 - decay) * J_batch

    def __post_init__(self):
        check_noise_settings(self)
        if self.match_k < 0:
            raise NmncError(f"match_k must be 0 (off) or positive, got {self.match_k}")


@RULES.register("vnc", VNCSettings, help="vanilla noise correlation (node perturbation)")
class VNC(NoiseRule):
    """White noise on every unit of each layer."""

    def noise(self, layer, h, gen):
        s = self.settings
        per_example = h.shape[h.dim() - len(self.shapes[layer]) :]  # one step's, in an RNN
        std = unit_sigma(s.sigma, math.prod(per_example), s.match_k)
        xi = std * normal(gen, (s.P, *h.shape), h.device)
        return xi, std**2


@dataclass(frozen=True)
class VNCUnmatchedSettings(VNCSettings):
    """Settings of ``vnc-unmatched``: VNC with per-unit std sigma (match_k = 0)."""

    match_k: int = 0


RULES.register(
    "vnc-unmatched",
    VNCUnmatchedSettings,
    help="vanilla noise correlation with per-unit std sigma (n/k times NMNC's noise energy)",
)(VNC)
