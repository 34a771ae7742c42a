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


def neural_material(sessions: list[tuple[str, int, list]], ceiling: float | None) -> dict:
    """Flat material of a neural score: per session its held-out stimuli count and, per split,
    the positions (into those stimuli), predictions and responses (stimuli x neurons)."""
    out = {
        "kind": "neural",
        "ceiling": np.nan if ceiling is None else float(ceiling),
        "sessions": np.array([name for name, _, _ in sessions]),
    }
    for i, (_, n, splits) in enumerate(sessions):
        out[f"n_{i}"] = n
        out[f"splits_{i}"] = len(splits)
        for j, (pos, pred, resp) in enumerate(splits):
            out[f"pos_{i}_{j}"], out[f"pred_{i}_{j}"], out[f"resp_{i}_{j}"] = pos, pred, resp
    return out


def pls_heldout(
    features: np.ndarray, responses: np.ndarray, stimulus_ids: list[str], splits: int, seed: int = 0
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Per-neuron PLS predictivity exactly as ``brainscore_adapter.pls_per_neuron`` computes it,
    and each split's held-out (positions, predictions, responses), neurons in the metric's order.

    The per-neuron score is the mean over splits of the Pearson r of the split's predictions and
    responses, so a resample of stimuli can recompute it from the saved splits alone.
    """
    import logging
    import warnings

    from .brainscore_adapter import _bs, neuroid_assembly

    logging.getLogger("brainscore_vision").setLevel(logging.WARNING)
    metric = _bs().load_metric(
        "pls",
        crossvalidation_kwargs=dict(splits=splits, stratification_coord=None, random_state=seed),
    )
    position = {sid: i for i, sid in enumerate(stimulus_ids)}
    kept = []

    def apply(source_train, target_train, source_test, target_test):
        metric.regression.fit(source_train, target_train)
        prediction = metric.regression.predict(source_test)
        order = ["stimulus_id", "neuroid_id"]  # the order the metric correlates in
        p, t = prediction.sortby(order), target_test.sortby(order)
        pos = np.array([position[s] for s in p["stimulus_id"].values])
        kept.append((pos, np.asarray(p.values, np.float64), np.asarray(t.values, np.float64)))
        return metric.correlation(prediction, target_test)

    metric.apply = apply  # the cross-validation calls metric.apply for every split
    source = neuroid_assembly(
        features, stimulus_ids, [f"f{i}" for i in range(features.shape[1])], "model"
    )
    target = neuroid_assembly(responses, stimulus_ids, [f"n{i}" for i in range(responses.shape[1])])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Maximum number of iterations reached")
        score = metric(source, target)
    return score.raw.mean("split").values, kept
