"""Dimension of neural activity: participation ratio and TwoNN intrinsic dimension.

TwoNN (Facco, d'Errico, Rodriguez & Laio 2017, Sci. Rep. 7:12140): for each point the ratio
mu = r2/r1 of its second to first nearest-neighbour distance follows a Pareto law with exponent
d, P(mu) = d mu^(-d-1). We use the paper's estimator: a least-squares line through the origin of
-log(1 - F(mu)) against log(mu), discarding the largest ``discard`` fraction of mu (the tail is
sensitive to density changes). Written here rather than taken from scikit-dimension, which pulls
in numba and llvmlite for this one estimator; this version also runs on the GPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def participation_ratio(X: torch.Tensor) -> float:
    """(sum lambda)^2 / sum lambda^2 of the covariance of the rows of X (N, n), via the N x N
    Gram."""
    X = X.double().flatten(1)
    X = X - X.mean(0)
    gram = X @ X.T  # same non-zero spectrum as X^T X
    return float(torch.trace(gram) ** 2 / (gram**2).sum().clamp_min(1e-300))


def spectrum_pr(eigenvalues) -> float:
    """Participation ratio of a spectrum of variances."""
    lam = torch.as_tensor(eigenvalues, dtype=torch.float64).clamp_min(0)
    return float(lam.sum() ** 2 / (lam**2).sum().clamp_min(1e-300))


def twonn(X: torch.Tensor, discard: float = 0.1) -> float:
    """TwoNN intrinsic dimension of the rows of X (N, n)."""
    X = X.double().flatten(1)
    D = torch.cdist(X, X)
    D.fill_diagonal_(float("inf"))
    r, _ = torch.topk(D, 2, dim=1, largest=False)
    keep = r[:, 0] > 0  # duplicate points carry no ratio
    mu = (r[keep, 1] / r[keep, 0]).cpu().numpy()
    mu = np.sort(mu)
    n = len(mu)
    m = int(math.floor(n * (1 - discard)))
    if m < 3:
        raise ValueError(f"TwoNN needs more distinct points (got {n})")
    F = np.arange(1, n + 1) / n
    x = np.log(mu[:m])
    y = -np.log(1 - F[:m])
    return float((x @ y) / (x @ x))


def power_law(x, y) -> tuple[float, float]:
    """Fit y = c * x^beta by least squares in log-log space; returns (beta, c)."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    beta, logc = np.polyfit(lx, ly, 1)
    return float(beta), float(np.exp(logc))
