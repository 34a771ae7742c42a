"""Jacobian-manifold alignment of a layer: how much of the output Jacobian's row space lies on the
activity manifold.

alpha_k = sum_i |J_i U_k|_F^2 / sum_i |J_i|_F^2, with U_k the top-k principal directions of the
layer's activity over the images and J_i = dy/dh (n_o x n) for image i. A random k-dim subspace
gives k/n (chance). Directions beyond the activity's rank (at most N-1 for N images) carry no
variance; there the curve is completed by a random orthonormal basis of the complement, whose
expected contribution is linear in k (rows marked ``beyond_rank``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .dimension import participation_ratio, twonn
from ..engine.perturb import frozen_norm


def k_grid(n: int, points: int = 24, extra=(8, 32, 128)) -> list[int]:
    ks = set(np.unique(np.geomspace(1, n, points).round().astype(int)).tolist())
    ks.update(k for k in extra if k <= n)
    ks.add(n)
    return sorted(ks)


def jacobians(model, layer: str, h: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Output Jacobians dy/dh for every image: (N, n_o, n)."""
    out = []
    for hc in h.split(chunk):
        hc = hc.detach().clone().requires_grad_()
        y = model.forward_from(layer, hc)
        rows = [torch.autograd.grad(y[:, c].sum(), hc, retain_graph=c < y.shape[1] - 1)[0].flatten(1) for c in range(y.shape[1])]
        out.append(torch.stack(rows, 1))
    return torch.cat(out)


def layer_alignment(model, layer: str, h: torch.Tensor, ks: list[int] | None = None, seed: int = 0) -> dict:
    """Alignment curve, principal angles and dimensions for one layer's activity h (N, *shape)."""
    with frozen_norm(model):
        J = jacobians(model, layer, h)  # (N, n_o, n)
    X = h.detach().flatten(1).double()
    N, n = X.shape
    Xc = X - X.mean(0)
    _, S, Vh = torch.linalg.svd(Xc, full_matrices=False)
    rank = int((S > S[0] * 1e-10).sum()) if S.numel() else 0
    U = Vh[:rank].T  # (n, rank) principal directions, by variance
    Jr = J.double().reshape(-1, n)  # all Jacobian rows
    total = float((Jr ** 2).sum())
    on = ((Jr @ U) ** 2).sum(0)  # (rank,) Jacobian energy along each principal direction
    cum = torch.cumsum(on, 0) / total
    a_rank = float(cum[-1]) if rank else 0.0
    ks = ks or k_grid(n)
    Jm = J.double().mean(0)  # (n_o, n) image-averaged Jacobian
    Qj = torch.linalg.qr(Jm.T)[0]  # orthonormal basis of its row space
    curve, angles = [], []
    for k in ks:
        if k <= rank:
            alpha = float(cum[k - 1])
        else:  # random completion of the complement: expected share grows linearly
            alpha = a_rank + (1 - a_rank) * (k - rank) / max(n - rank, 1)
        alpha_mean_j = float(((Jm @ U[:, :min(k, rank)]) ** 2).sum() / (Jm ** 2).sum()) if rank else 0.0
        curve.append({"layer": layer, "n": n, "k": k, "alpha": alpha, "chance": k / n,
                      "alpha_mean_jacobian": alpha_mean_j if k <= rank else float("nan"), "beyond_rank": k > rank})
        if k <= rank:
            cosines = torch.linalg.svdvals(Qj.T @ U[:, :k]).clamp(0, 1)
            for i, c in enumerate(cosines.tolist()):
                angles.append({"layer": layer, "k": k, "index": i + 1, "cos": c, "degrees": math.degrees(math.acos(c))})
    dims = {"layer": layer, "n": n, "images": N, "rank": rank, "pr": participation_ratio(X), "twonn": twonn(X)}
    return {"curve": curve, "angles": angles, "dimension": dims}
