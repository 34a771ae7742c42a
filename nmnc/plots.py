"""Figures with seaborn, saved as PNG and SVG (headless backend)."""

from __future__ import annotations

from pathlib import Path

from .io import atomic_path


def save(fig, out: Path, stem: str) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.svg`` in ``out`` and close it."""
    paths = []
    for ext in ("png", "svg"):
        p = Path(out) / f"{stem}.{ext}"
        with atomic_path(p, suffix=f".{ext}") as tmp:  # a killed run never leaves half a figure
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=ext)
        paths.append(p)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths


def setup():
    """The headless backend and the house seaborn theme; returns seaborn."""
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return sns


def learning_curves(logs, y: str, rules: list[str], errorbar, ylabel: str):
    """Two panels of ``y`` from metrics logs (one row per run and step): against examples seen
    and against perturbations spent (log scale; noise rules only), one colour per rule in both.
    Returns (figure, axes)."""
    sns = setup()
    import matplotlib.pyplot as plt

    palette = dict(zip(rules, sns.color_palette(n_colors=len(rules))))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    noisy = logs[logs.perturbations > 0]
    for ax, x, data in ((axes[0], "examples", logs), (axes[1], "perturbations", noisy)):
        if len(data):
            order = [r for r in rules if r in set(data.rule)]
            sns.lineplot(
                data=data,
                x=x,
                y=y,
                hue="rule",
                hue_order=order,
                palette=palette,
                errorbar=errorbar,
                ax=ax,
            )
        ax.set_ylabel(ylabel)
    if len(noisy):
        axes[1].set_xscale("log")
    return fig, axes
