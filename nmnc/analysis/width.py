"""Width sweep: how the dimension of each layer's activity grows with the network's width.

Each width is trained briefly from a recipe (or taken from given checkpoints), then the
participation ratio and TwoNN dimension of every hidden layer are measured on the same held-out
images and ``dimension ~ width^beta`` is fitted per layer and over all layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    """A width sweep: widths, how each is trained (recipe and settings) or which checkpoints."""

    out: str  # folder: width.csv, width_fit.csv, width.png/svg, and runs/ for trained widths
    widths: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    recipe: str = "cnn-width"  # training recipe for each width (rule bp)
    run: dict = field(default_factory=dict)  # settings on top of the recipe (e.g. {"steps": 20})
    checkpoints: tuple[str, ...] = ()  # one per width instead of training
    images: int = 1000  # held-out test images
    seed: int = 0
    data_root: str | None = None
    progress: bool = True

    def __post_init__(self):
        from ..training import get_recipe

        if not self.widths or any(w <= 0 for w in self.widths):
            given = ", ".join(map(str, self.widths)) or "none"
            raise NmncError(f"widths must be positive numbers, got {given}; e.g. widths=0.25,0.5,1")
        if self.checkpoints and len(self.checkpoints) != len(self.widths):
            raise NmncError(
                f"{len(self.checkpoints)} checkpoints for {len(self.widths)} widths; "
                "give one per width, in order"
            )
        if self.images < 1:
            raise NmncError(f"images must be at least 1, got {self.images}")
        if "width" in self.run or "model.width" in self.run:
            raise NmncError("the width of each run comes from widths=...; leave width out of run")
        get_recipe(self.recipe).config("bp", "unused", self.seed, None, {**self.run, "width": 1.0})


def width_sweep(cfg: WidthSweepConfig) -> dict[str, pd.DataFrame]:
    """Train (or load) each width, measure dimensions, fit power laws; returns ``width`` and
    ``fit``."""
    from ..training import get_recipe, train_or_resume

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
                {**cfg.run, "width": width},
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
