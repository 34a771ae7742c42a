"""NMNC, neural manifold noise correlation: noise restricted to each layer's activity manifold."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..engine.manifold import AUTO, ESTIMATORS, K_RULES, NOISE_SHAPES, SPACES, make_manifold
from ..errors import NmncError, UnknownNameError
from . import RULES
from ._noise import NoiseRule, check_noise_settings


@dataclass(frozen=True)
class NMNCSettings:
    """Settings of NMNC; units in the comments."""

    sigma: float = 0.05  # noise std per manifold direction, in units of post-ReLU activity
    P: int = 16  # perturbations per example and layer
    antithetic: bool = True
    form: str = "jacobian"  # 'jacobian' or 'loss'
    mode: str = "layerwise"  # 'layerwise' or 'all'
    time: str = "all"  # recurrent models: every step at once ('all') or one 'step' at a time
    layers: str = "all"
    max_batch: int = 4096
    # manifold dimension (the cap when k_rule is adaptive: k_max); a layer smaller than k uses its
    # size, and a k larger than every layer is refused
    k: int = 32
    k_rule: str = (
        "fixed"  # 'fixed', 'variance' (explained-variance threshold) or 'pr' (participation ratio)
    )
    var_threshold: float = 0.9
    k_max: int = 256
    # 'pca' (buffer SVD), 'ema' (moving-average covariance), 'oja' (Sanger rule), 'fd' (a rank-2k
    # frequent-directions sketch, O(n k) memory) or 'auto': pca where a layer's buffer
    # (buffer x n float32) fits in manifold_mb, fd where it does not
    estimator: str = "auto"
    # per layer; at 96 MB every layer of the CIFAR cnn (and of resnet at width 0.25) stays on pca
    manifold_mb: float = 96.0
    centered: bool = True  # centred covariance (True) or uncentred second moment (False)
    space: str = "map"  # 'map' (C*H*W units) or 'channel' (C-dim manifold shared across positions)
    refresh: int = 20  # steps between manifold refreshes (T)
    buffer: int = 1024  # activity vectors kept for batch PCA
    ema_decay: float = 0.99
    oja_lr: float = 0.2
    # 'pca': direction i of U gets std sigma * s_i, s_i ~ sqrt(PCA variance), mean s^2 = 1 (the
    # default: reports/defaults/defaults.md); 'white': isotropic in span(U)
    noise_shape: str = "pca"
    feedback: str = "example"  # 'example' (per-example estimate) or 'amortised' (averaged J_hat)
    feedback_decay: float = 0.9  # amortised: J_bar <- decay * J_bar + (1 - decay) * J_batch

    def __post_init__(self):
        check_noise_settings(self)
        for name, value, allowed in (
            ("estimator", self.estimator, (*ESTIMATORS, AUTO)),
            ("space", self.space, SPACES),
            ("k_rule", self.k_rule, K_RULES),
            ("noise_shape", self.noise_shape, NOISE_SHAPES),
        ):
            if value not in allowed:
                raise UnknownNameError(f"manifold {name}", value, allowed)
        for name in ("k", "k_max", "refresh", "buffer"):
            if getattr(self, name) < 1:
                raise NmncError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.manifold_mb > 0:
            raise NmncError(f"manifold_mb must be positive, got {self.manifold_mb}")
        if not 0 < self.var_threshold <= 1 or not 0 < self.ema_decay < 1 or not self.oja_lr > 0:
            raise NmncError(
                "var_threshold must be in (0, 1], ema_decay in (0, 1) and oja_lr positive; "
                f"got {self.var_threshold}, {self.ema_decay}, {self.oja_lr}"
            )


@RULES.register(
    "nmnc", NMNCSettings, help="neural manifold noise correlation (noise on the activity manifold)"
)
class NMNC(NoiseRule):
    """Noise on each layer's activity manifold, estimated from its recent clean activity."""

    def __init__(self, model, settings):
        super().__init__(model, settings)
        s = settings
        self.manifolds = {
            name: make_manifold(
                self.shapes[name],
                estimator=s.estimator,
                manifold_mb=s.manifold_mb,
                k=s.k if s.k_rule == "fixed" else s.k_max,
                space=s.space,
                centered=s.centered,
                refresh=s.refresh,
                buffer=s.buffer,
                k_rule=s.k_rule,
                var_threshold=s.var_threshold,
                k_max=s.k_max,
                ema_decay=s.ema_decay,
                oja_lr=s.oja_lr,
                noise_shape=s.noise_shape,
                seed=i,
            )
            for i, name in enumerate(self.layers)
        }
        largest = max(m.dim for m in self.manifolds.values())
        if s.k_rule == "fixed" and s.k > largest:
            raise NmncError(
                f"k={s.k} is larger than every layer's manifold (at most {largest} dimensions in "
                f"space={s.space}); choose k from 1 to {largest} (each layer uses at most its size)"
            )

    def observe(self, acts):
        for name, m in self.manifolds.items():
            # under torchrun every process takes in the whole batch's rows, in example order, so
            # every process holds the manifold one process would
            rows = self.world.gather(self.rows(name, acts[name]))
            if len(rows) > self.settings.buffer:  # states pooled over time and examples: keep
                pick = torch.linspace(0, len(rows) - 1, self.settings.buffer, device=rows.device)
                rows = rows[pick.long()]  # evenly spaced ones, from every example of the batch
            m.observe(rows, self.t)

    def noise(self, layer, h, gen):
        """``sigma U z`` (white) or ``sigma U diag(s) z`` (noise_shape=pca) per example; the
        estimate divides by sigma^2 either way, so shaped noise estimates J U diag(s^2) U^T."""
        s = self.settings
        rows = len(self.rows(layer, h))  # examples, or examples x steps (recurrent models)
        xi = self.manifolds[layer].sample(s.P, rows, s.sigma, gen)
        return xi.view(s.P, *h.shape), s.sigma**2

    def state_dict(self):
        return {
            **super().state_dict(),
            "manifolds": {n: m.state_dict() for n, m in self.manifolds.items()},
        }

    def load_state_dict(self, state):
        super().load_state_dict(state)
        for name, ms in (state.get("manifolds") or {}).items():
            if name in self.manifolds:
                self.manifolds[name].load_state_dict(ms)
