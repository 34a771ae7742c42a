"""NMNC, neural manifold noise correlation: noise restricted to each layer's activity manifold."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.manifold import make_manifold
from . import RULES
from ._noise import NoiseRule


@dataclass(frozen=True)
class NMNCSettings:
    """Settings of NMNC; units in the comments."""

    sigma: float = 0.05  # noise std per manifold direction, in units of post-ReLU activity
    P: int = 16  # perturbations per example and layer
    antithetic: bool = True
    form: str = "jacobian"  # 'jacobian' or 'loss'
    mode: str = "layerwise"  # 'layerwise' or 'all'
    layers: str = "all"
    max_batch: int = 4096
    k: int = 32  # manifold dimension (the cap when k_rule is adaptive: k_max)
    k_rule: str = (
        "fixed"  # 'fixed', 'variance' (explained-variance threshold) or 'pr' (participation ratio)
    )
    var_threshold: float = 0.9
    k_max: int = 256
    estimator: str = (
        "pca"  # 'pca' (buffer SVD), 'ema' (moving-average covariance) or 'oja' (Sanger rule)
    )
    centered: bool = True  # centred covariance (True) or uncentred second moment (False)
    space: str = "map"  # 'map' (C*H*W units) or 'channel' (C-dim manifold shared across positions)
    refresh: int = 20  # steps between manifold refreshes (T)
    buffer: int = 1024  # activity vectors kept for batch PCA
    ema_decay: float = 0.99
    oja_lr: float = 0.2


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
                seed=i,
            )
            for i, name in enumerate(self.layers)
        }

    def observe(self, acts):
        for name, m in self.manifolds.items():
            m.observe(acts[name], self.t)

    def noise(self, layer, h, gen):
        s = self.settings
        return self.manifolds[layer].sample(s.P, len(h), s.sigma, gen), s.sigma**2

    def state_dict(self):
        return {"t": self.t, "manifolds": {n: m.state_dict() for n, m in self.manifolds.items()}}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        for name, ms in (state.get("manifolds") or {}).items():
            if name in self.manifolds:
                self.manifolds[name].load_state_dict(ms)
