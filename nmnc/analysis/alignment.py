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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..checkpoint import load_checkpoint
from ..engine.perturb import frozen_norm
from ..engine.taps import activities
from ..errors import NmncError
from ..io import atomic_write_text
from ..plots import save, setup
from ..progress import tqdm
from .data import held_out
from .dimension import participation_ratio, twonn


def k_grid(n: int, points: int = 24, extra=(8, 32, 128)) -> list[int]:
    """Log-spaced manifold dimensions from 1 to n, plus the usual 8, 32 and 128."""
    ks = set(np.unique(np.geomspace(1, n, points).round().astype(int)).tolist())
    ks.update(k for k in extra if k <= n)
    ks.add(n)
    return sorted(ks)


def jacobians(
    model, layer: str, h: torch.Tensor, context: dict | None = None, chunk: int = 256
) -> torch.Tensor:
    """Output Jacobians dy/dh for every image: (N, n_o, n). ``context``: the same images' clean
    activities of other layers, read above ``layer`` through skip connections."""
    out = []
    for i, hc in enumerate(h.split(chunk)):
        ctx = {n: t[i * chunk : (i + 1) * chunk] for n, t in (context or {}).items()}
        hc = hc.detach().clone().requires_grad_()
        y = model.forward_from(layer, hc, ctx)
        rows = [
            torch.autograd.grad(y[:, c].sum(), hc, retain_graph=c < y.shape[1] - 1)[0].flatten(1)
            for c in range(y.shape[1])
        ]
        out.append(torch.stack(rows, 1))
    return torch.cat(out)


def layer_alignment(
    model,
    layer: str,
    h: torch.Tensor,
    ks: list[int] | None = None,
    seed: int = 0,
    context: dict | None = None,
) -> dict:
    """Alignment curve, principal angles and dimensions for one layer's activity h (N, *shape);
    ``context`` holds the same images' activities of the other layers (skip connections)."""
    with frozen_norm(model):
        J = jacobians(model, layer, h, context)  # (N, n_o, n)
    X = h.detach().flatten(1).double()
    N, n = X.shape
    Xc = X - X.mean(0)
    _, S, Vh = torch.linalg.svd(Xc, full_matrices=False)
    rank = int((S > S[0] * 1e-10).sum()) if S.numel() else 0
    U = Vh[:rank].T  # (n, rank) principal directions, by variance
    Jr = J.double().reshape(-1, n)  # all Jacobian rows
    total = float((Jr**2).sum())
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
        alpha_mean_j = (
            float(((Jm @ U[:, : min(k, rank)]) ** 2).sum() / (Jm**2).sum()) if rank else 0.0
        )
        curve.append(
            {
                "layer": layer,
                "n": n,
                "k": k,
                "alpha": alpha,
                "chance": k / n,
                "alpha_mean_jacobian": alpha_mean_j if k <= rank else float("nan"),
                "beyond_rank": k > rank,
            }
        )
        if k <= rank:
            cosines = torch.linalg.svdvals(Qj.T @ U[:, :k]).clamp(0, 1)
            for i, c in enumerate(cosines.tolist()):
                angles.append(
                    {
                        "layer": layer,
                        "k": k,
                        "index": i + 1,
                        "cos": c,
                        "degrees": math.degrees(math.acos(c)),
                    }
                )
    dims = {
        "layer": layer,
        "n": n,
        "images": N,
        "rank": rank,
        "pr": participation_ratio(X),
        "twonn": twonn(X),
    }
    return {"curve": curve, "angles": angles, "dimension": dims}


# ---- a whole checkpoint ------------------------------------------------------------------------
@dataclass(frozen=True)
class AlignmentConfig:
    """Alignment and dimension analysis of one checkpoint on held-out images."""

    checkpoint: str
    out: str | None = None  # folder: alignment.csv, angles.csv, dimension.csv and figures
    images: int = 1000  # held-out test images
    data_root: str | None = None
    progress: bool = True

    def __post_init__(self):
        if self.images < 1:
            raise NmncError(f"images must be at least 1, got {self.images}")


def analyse_model(
    model, x: torch.Tensor, state: str, progress: bool = True
) -> dict[str, pd.DataFrame]:
    """Alignment curves, principal angles and dimensions of every hidden layer of ``model``."""
    model.eval()
    curves, angles, dims = [], [], []
    acts = activities(model, x)
    for layer, h in tqdm(acts.items(), desc=f"layers ({state})", leave=False, disable=not progress):
        r = layer_alignment(model, layer, h, context=acts)
        curves += r["curve"]
        angles += r["angles"]
        dims.append(r["dimension"])
    return {
        name: pd.DataFrame(rows).assign(state=state)
        for name, rows in (("alignment", curves), ("angles", angles), ("dimension", dims))
    }


def analyse_checkpoint(cfg: AlignmentConfig) -> dict[str, pd.DataFrame]:
    """The trained network and the same architecture at initialisation, on the same images.

    Returns (and writes under ``cfg.out``) the tables ``alignment``, ``angles``, ``dimension``
    and ``summary``.
    """
    ckpt = load_checkpoint(cfg.checkpoint)
    ckpt.require_images("the alignment analysis of image models")
    x = held_out(ckpt, cfg.images, cfg.data_root)
    parts = [
        analyse_model(ckpt.build_model(), x, "trained", cfg.progress),
        analyse_model(ckpt.untrained_model(), x, "untrained", cfg.progress),
    ]
    tables = {k: pd.concat([p[k] for p in parts], ignore_index=True) for k in parts[0]}
    tables["summary"] = summarise(tables)
    if cfg.out:
        out = Path(cfg.out)
        for name in ("alignment", "angles", "dimension"):
            atomic_write_text(out / f"{name}.csv", tables[name].to_csv(index=False))
        plot_alignment(tables["alignment"], tables["dimension"], out)
    return tables


def summarise(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per state and layer: alpha and chance at k = 8, 32, 128, participation ratio and TwoNN."""
    a, d = tables["alignment"], tables["dimension"]
    rows = []
    for (state, layer), g in a.groupby(["state", "layer"], sort=False):
        row = {"state": state, "layer": layer, "n": int(g.n.iloc[0])}
        for k in (8, 32, 128):
            hit = g[g.k == k]
            if len(hit):
                row[f"alpha@{k}"] = hit.alpha.iloc[0]
                row[f"chance@{k}"] = hit.chance.iloc[0]
        dim = d[(d.state == state) & (d.layer == layer)].iloc[0]
        row.update(pr=dim.pr, twonn=dim.twonn)
        rows.append(row)
    return pd.DataFrame(rows)


def plot_alignment(alignment: pd.DataFrame, dimension: pd.DataFrame, out: Path) -> list[Path]:
    """alignment.png/svg (alpha_k against k per layer, with chance) and dimension.png/svg."""
    sns = setup()
    import matplotlib.pyplot as plt

    layers = list(dict.fromkeys(alignment.layer))
    fig, axes = plt.subplots(1, len(layers), figsize=(3.4 * len(layers), 3.2), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, layer in zip(axes, layers):
        g = alignment[alignment.layer == layer]
        sns.lineplot(data=g, x="k", y="alpha", hue="state", ax=ax, legend=ax is axes[0])
        c = g[g.state == g.state.iloc[0]]
        ax.plot(c.k, c.chance, "k--", lw=1, label="chance k/n")
        ax.set_xscale("log")
        ax.set_title(f"{layer} (n={int(g.n.iloc[0])})")
        ax.set_xlabel("manifold dimension k")
    axes[0].set_ylabel("alpha_k = |J U_k|^2 / |J|^2")
    axes[0].legend(fontsize=8)
    paths = save(fig, out, "alignment")
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, col, title in zip(
        axes, ("pr", "twonn"), ("participation ratio", "TwoNN intrinsic dimension")
    ):
        sns.barplot(data=dimension, x="layer", y=col, hue="state", ax=ax)
        ax.set_title(title)
    return paths + save(fig, out, "dimension")
