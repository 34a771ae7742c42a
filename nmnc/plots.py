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
