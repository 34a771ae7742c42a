"""Estimates of a layer's neural manifold: the top-k principal subspace U of its recent activity.

Space ("what a neuron is" for a conv layer):
- ``map``: the full C*H*W activity vector (n = C*H*W; randomized low-rank SVD);
- ``channel``: channel vectors at each location (n = C), one subspace shared across positions.

Estimators:
- ``pca``: SVD of a ring buffer of recent activity, refreshed every ``refresh`` steps;
- ``ema``: exponential moving average of the covariance, eigendecomposed at each refresh;
- ``oja``: Sanger's generalized Hebbian rule, a local streaming subspace rule.

``k`` is fixed, or (``k_rule``) the smallest k explaining ``var_threshold`` of the variance, or
the participation ratio; adaptive k never exceeds ``k_max``.
"""
from __future__ import annotations

import math

import torch

from ..analysis.dimension import spectrum_pr
from ..errors import NmncError, UnknownNameError

ESTIMATORS = ("pca", "ema", "oja")
SPACES = ("map", "channel")
K_RULES = ("fixed", "variance", "pr")


class Manifold:
    def __init__(self, shape: tuple[int, ...], k: int = 32, space: str = "map", estimator: str = "pca",
                 centered: bool = True, refresh: int = 20, buffer: int = 1024, k_rule: str = "fixed",
                 var_threshold: float = 0.9, k_max: int = 256, ema_decay: float = 0.99, oja_lr: float = 0.2,
                 max_rows: int = 4096, seed: int = 0):
        for name, value, allowed in (("estimator", estimator, ESTIMATORS), ("space", space, SPACES), ("k_rule", k_rule, K_RULES)):
            if value not in allowed:
                raise UnknownNameError(f"manifold {name}", value, allowed)
        if space == "channel" and len(shape) != 3:
            raise NmncError(f"space=channel needs a conv layer (C, H, W); this layer has shape {shape}; use space=map")
        self.shape = tuple(shape)
        self.dim = shape[0] if space == "channel" else math.prod(shape)
        if estimator == "ema" and self.dim > 8192:
            raise NmncError(f"estimator=ema keeps a {self.dim}x{self.dim} covariance; use estimator=pca or oja, or space=channel, for layers over 8192 units")
        self.space, self.estimator, self.centered = space, estimator, centered
        self.k_rule, self.var_threshold = k_rule, var_threshold
        self.k_cap = min(k if k_rule == "fixed" else k_max, self.dim)
        self.refresh, self.buffer_size, self.max_rows = refresh, buffer, max_rows
        self.ema_decay, self.oja_lr, self.seed = ema_decay, oja_lr, seed
        self.U: torch.Tensor | None = None  # (dim, k), orthonormal columns
        self.spectrum: torch.Tensor | None = None  # variances along U's columns
        self.pr: float | None = None
        self.last_refresh = -(10**9)
        self.buf: torch.Tensor | None = None
        self.count = 0  # rows written to the ring buffer so far
        self.mean: torch.Tensor | None = None
        self.cov: torch.Tensor | None = None
        self.W: torch.Tensor | None = None  # (k, dim) Sanger weights
        self.sq_norm: float = 0.0

    @property
    def k(self) -> int:
        return 0 if self.U is None else self.U.shape[1]

    def vectors(self, h: torch.Tensor) -> torch.Tensor:
        """Rows in the manifold's space: (B, C*H*W) for map, (rows, C) for channel."""
        h = h.detach().float()  # bf16 activity under autocast: the estimate is kept in float32
        if self.space == "map":
            return h.flatten(1)
        rows = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
        if len(rows) > self.max_rows:  # evenly spaced locations keep the estimate cheap
            rows = rows[torch.linspace(0, len(rows) - 1, self.max_rows, device=rows.device).long()]
        return rows

    # ---- updates ----------------------------------------------------------------------------
    def observe(self, h: torch.Tensor, step: int) -> None:
        """Take in a batch of clean activity; refresh U every ``refresh`` steps (and at the start)."""
        X = self.vectors(h)
        d = self.ema_decay
        if self.mean is None:
            self.mean = X.mean(0)
        else:
            self.mean = d * self.mean + (1 - d) * X.mean(0)
        if self.estimator == "pca":
            self._push(X)
        elif self.estimator == "ema":
            second = X.T @ X / len(X)
            self.cov = second if self.cov is None else d * self.cov + (1 - d) * second
        else:
            self._sanger(X)
        if self.U is None or step - self.last_refresh >= self.refresh:
            self._refresh()
            self.last_refresh = step

    def _push(self, X: torch.Tensor) -> None:
        if self.buf is None:
            self.buf = torch.zeros(self.buffer_size, self.dim, device=X.device)
        X = X[-self.buffer_size:]
        idx = (self.count + torch.arange(len(X), device=X.device)) % self.buffer_size
        self.buf[idx] = X
        self.count += len(X)

    def _sanger(self, X: torch.Tensor) -> None:
        if self.centered:
            X = X - self.mean
        if self.W is None:
            g = torch.Generator().manual_seed(self.seed)
            self.W = torch.linalg.qr(torch.randn(self.dim, self.k_cap, generator=g))[0].T.contiguous().to(X.device)
        self.sq_norm = 0.9 * self.sq_norm + 0.1 * float((X ** 2).sum(1).mean()) if self.sq_norm else float((X ** 2).sum(1).mean())
        Y = X @ self.W.T  # (M, k) projections
        # Sanger: dW = lr (y x^T - LT(y y^T) W), learning rate in units of the data's squared norm
        dW = (Y.T @ X - torch.tril(Y.T @ Y) @ self.W) / len(X)
        self.W += (self.oja_lr / max(self.sq_norm, 1e-12)) * dW

    def _refresh(self) -> None:
        if self.estimator == "pca":
            X = self.buf[: min(self.count, self.buffer_size)]
            if self.centered:
                X = X - X.mean(0)
            q = min(self.k_cap, *X.shape)
            total = float((X ** 2).sum())
            if min(X.shape) <= 2 * q + 10 or self.dim <= 1024:
                _, S, Vh = torch.linalg.svd(X, full_matrices=False)
                V = Vh.T
            else:
                g_state = torch.random.get_rng_state()
                torch.manual_seed(self.seed + self.count)  # randomized SVD, reproducible on resume
                _, S, V = torch.svd_lowrank(X, q=min(q + 10, *X.shape), niter=3)
                torch.random.set_rng_state(g_state)
            lam = S ** 2 / max(len(X) - 1, 1)
            gram = X @ X.T
            self.pr = float(total ** 2 / (gram ** 2).sum().clamp_min(1e-30))
            var_total = total / max(len(X) - 1, 1)
        else:
            if self.estimator == "ema":
                C = self.cov - (torch.outer(self.mean, self.mean) if self.centered else 0)
            else:
                C = None
            if C is not None:
                evals, evecs = torch.linalg.eigh(C)
                lam, V = evals.flip(0).clamp_min(0), evecs.flip(1)
                self.pr = spectrum_pr(lam)
                var_total = float(lam.sum())
            else:  # Sanger: orthonormalise the learned rows; variances from the latest projections
                V = torch.linalg.qr(self.W.T)[0]
                lam = torch.ones(V.shape[1], device=V.device)
                var_total = float(lam.sum())
        k = self._choose_k(lam, var_total)
        self.U = V[:, :k].contiguous()
        self.spectrum = lam[:k]

    def _choose_k(self, lam: torch.Tensor, var_total: float) -> int:
        cap = min(self.k_cap, lam.numel())
        if self.k_rule == "fixed" or self.estimator == "oja":
            return cap
        if self.k_rule == "pr":
            return int(max(1, min(cap, round(self.pr or 1))))
        frac = torch.cumsum(lam, 0) / max(var_total, 1e-30)
        return int(min(cap, int((frac < self.var_threshold).sum()) + 1))

    # ---- noise ------------------------------------------------------------------------------
    def sample(self, P: int, B: int, sigma: float, gen: torch.Generator) -> torch.Tensor:
        """Perturbations ``sigma * U z``, z ~ N(0, I_k): (P, B, *shape), covariance sigma^2 U U^T."""
        U = self.U
        if self.space == "map":
            z = torch.randn(P, B, U.shape[1], generator=gen, device=U.device)
            return (sigma * z @ U.T).view(P, B, *self.shape)
        C, H, W = self.shape
        z = torch.randn(P, B, H * W, U.shape[1], generator=gen, device=U.device)
        return (sigma * z @ U.T).view(P, B, H, W, C).permute(0, 1, 4, 2, 3)

    def project(self, g: torch.Tensor) -> torch.Tensor:
        """Pi g: the part of activity-space vectors (B, *shape) on the manifold."""
        U = self.U
        if self.space == "map":
            flat = g.flatten(1)
            return ((flat @ U) @ U.T).view_as(g)
        rows = g.permute(0, 2, 3, 1)
        return ((rows @ U) @ U.T).permute(0, 3, 1, 2)

    # ---- checkpoints ------------------------------------------------------------------------
    STATE = ("U", "spectrum", "pr", "last_refresh", "buf", "count", "mean", "cov", "W", "sq_norm")

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.STATE}

    def load_state_dict(self, state: dict) -> None:
        for k in self.STATE:
            if k in state:
                setattr(self, k, state[k])
