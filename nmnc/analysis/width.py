"""Width sweep: how the dimension of each layer's activity grows with the network's width.

Each width is trained briefly from a recipe (or taken from given checkpoints), then the
participation ratio and TwoNN dimension of every hidden layer are measured on the same held-out
images and ``dimension ~ width^beta`` is fitted per layer and over all layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..checkpoint import load_checkpoint
from ..engine.taps import activities
from ..errors import NmncError
from ..io import atomic_write_text
from ..plots import save, setup
from .data import held_out
from .dimension import participation_ratio, power_law, twonn


@dataclass(frozen=True)
class WidthSweepConfig:
    out: str  # folder: width.csv, width_fit.csv, width.png/svg, and runs/ for trained widths
    widths: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    recipe: str = "cnn-width"  # training recipe for each width (rule bp)
    sets: dict | None = None  # settings on top of the recipe (e.g. {"steps": 20})
    checkpoints: tuple[str, ...] = ()  # one per width instead of training
    images: int = 1000  # held-out test images
    seed: int = 0
    data_root: str | None = None
    progress: bool = True


def width_sweep(cfg: WidthSweepConfig) -> dict[str, pd.DataFrame]:
    """Train (or load) each width, measure dimensions, fit power laws; returns ``width`` and
    ``fit``."""
    from ..training import get_recipe, train_or_resume

    if not cfg.widths or any(w <= 0 for w in cfg.widths):
        raise NmncError(
            f"widths must be positive numbers, got {', '.join(map(str, cfg.widths)) or 'none'}; "
            "e.g. widths=0.25,0.5,1"
        )
    if cfg.checkpoints and len(cfg.checkpoints) != len(cfg.widths):
        raise NmncError(
            f"{len(cfg.checkpoints)} checkpoints for {len(cfg.widths)} widths; "
            "give one per width, in order"
        )
    out = Path(cfg.out)
    recipe = get_recipe(cfg.recipe)
    rows, x = [], None
    for i, width in enumerate(cfg.widths):
        if cfg.checkpoints:
            path = cfg.checkpoints[i]
        else:
            run = recipe.config(
                "bp",
                out / "runs" / f"{recipe.model}_w{width:g}",
                cfg.seed,
                cfg.data_root,
                {**(cfg.sets or {}), "width": width},
            )
            path = train_or_resume(run, cfg.progress).checkpoint
        ckpt = load_checkpoint(path)
        if abs(ckpt.model_settings.get("width", 1.0) - width) > 1e-9:
            raise NmncError(
                f"checkpoint {path} has width {ckpt.model_settings.get('width')}, expected {width}"
            )
        if x is None:
            x = held_out(ckpt, cfg.images, cfg.data_root)
        for layer, h in activities(ckpt.build_model(), x).items():
            X = h.flatten(1)
            rows.append(
                {
                    "model": ckpt.arch,
                    "width": width,
                    "layer": layer,
                    "n": X.shape[1],
                    "pr": participation_ratio(X),
                    "twonn": twonn(X),
                    "test_acc": ckpt.test_acc,
                }
            )
    df = pd.DataFrame(rows)
    fits = fit(df)
    atomic_write_text(out / "width.csv", df.to_csv(index=False))
    atomic_write_text(out / "width_fit.csv", fits.to_csv(index=False))
    plot(df, fits, out)
    return {"width": df, "fit": fits}


def fit(df: pd.DataFrame) -> pd.DataFrame:
    """Exponents of dimension ~ width^beta and ~ n^beta, per layer and over all layers."""
    fits = []
    for measure in ("pr", "twonn"):
        for layer, g in df.groupby("layer", sort=False):
            fits.append(
                {
                    "measure": measure,
                    "layer": layer,
                    "beta_width": power_law(g.width, g[measure])[0],
                    "beta_n": power_law(g.n, g[measure])[0],
                }
            )
        fits.append(
            {
                "measure": measure,
                "layer": "all",
                "beta_width": power_law(df.width, df[measure])[0],
                "beta_n": power_law(df.n, df[measure])[0],
            }
        )
    return pd.DataFrame(fits)


def plot(df: pd.DataFrame, fits: pd.DataFrame, out: Path) -> list[Path]:
    """width.png/svg: each dimension measure against layer size, log-log."""
    sns = setup()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, measure in zip(axes, ("pr", "twonn")):
        sns.lineplot(data=df, x="n", y=measure, hue="layer", marker="o", ax=ax)
        ax.set_xscale("log")
        ax.set_yscale("log")
        b = fits[(fits.measure == measure) & (fits.layer == "all")].beta_width.iloc[0]
        ax.set_title(f"{measure}: dimension ~ width^{b:.2f}")
        ax.set_xlabel("layer size n_l")
    return save(fig, out, "width")
