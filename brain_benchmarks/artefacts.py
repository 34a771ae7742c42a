"""Per-stimulus artefacts of committed scores, kept so a report can resample stimuli.

A committed score is a statistic over stimuli; the report's paired statistics redraw those stimuli
(the same draws for every model), so scoring keeps what each score is computed from:

- RSA benchmarks: the model RDM at the committed layer and the brain RDM, on the held-out stimuli;
- neural benchmarks: the cross-validated held-out predictions and responses of every split and
  session (the fits are not redone on a resample);
- test accuracy (written by the report): which test images the run classifies correctly.

Files: ``<results folder>/artefacts/<benchmark>/v<version>/<weights hash>.npz``, written
atomically; plain arrays only (no pickles).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np

from nmnc.io import atomic_write_bytes

FOLDER = "artefacts"


def artefact_path(folder: str | Path, benchmark: str, version: int, weights: str) -> Path:
    """Where the artefact of one model (weights hash) on one benchmark version lives."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", str(benchmark))
    return Path(folder) / safe / f"v{int(version)}" / f"{weights}.npz"


def save_artefact(path: str | Path, material: dict) -> Path:
    """Write ``material`` (names -> arrays, strings or numbers) as an .npz file atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in material.items()})
    return atomic_write_bytes(path, buf.getvalue())


def load_artefact(path: str | Path) -> dict | None:
    """The material saved at ``path``; None when there is none or it is unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def neural_material(sessions: list[dict], blocks: list[list[dict]], ceilings) -> dict:
    """Flat material of a neural score: per session its stimulus count, its ceiling (NaN: none)
    and, per block (a cross-fitted half) and fold, the held-out positions (into the session's
    stimuli), predictions and responses (stimuli x neurons)."""
    out = {
        "kind": "neural",
        "sessions": np.array([s["session"] for s in sessions]),
        "ceilings": np.asarray(ceilings, np.float64),
    }
    for i, (s, fits) in enumerate(zip(sessions, blocks)):
        out[f"n_{i}"] = len(s["stimuli"])
        out[f"blocks_{i}"] = len(fits)
        for b, fit in enumerate(fits):
            out[f"folds_{i}_{b}"] = len(fit["folds"])
            for j, (pos, pred, resp) in enumerate(fit["folds"]):
                key = f"{i}_{b}_{j}"
                out[f"pos_{key}"], out[f"pred_{key}"], out[f"resp_{key}"] = pos, pred, resp
    return out
