"""Resampling statistics over seeds and stimuli, from the per-stimulus artefacts of scoring.

Two levels, drawn independently and shared by every model they compare:

1. stimuli: ``stimulus_scores`` gives each model's committed score on the same ``n_boot``
   resamples of stimuli (with replacement), scored as the results table scores it (the same
   statistic, divided by the same fixed ceiling);
2. seeds: ``seed_means`` draws seeds with replacement in every stimulus resample and averages the
   models' scores over the drawn seeds; a paired comparison uses the same seed draw for both rules.

The 95% intervals are percentiles of those bootstrap values; with one seed only stimuli vary.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np

from nmnc.errors import NmncError

from . import rsa

LEVEL = 95.0  # percent
Draw = Callable[[int], np.ndarray]  # n -> (B, n) indices of the stimuli drawn in each resample


def counts(draws: np.ndarray, n: int) -> np.ndarray:
    """How often each of ``n`` stimuli appears in each resample: (B, n) from draws (B, k)."""
    B = len(draws)
    flat = (draws + n * np.arange(B)[:, None]).ravel()
    return np.bincount(flat, minlength=B * n).reshape(B, n).astype(np.float64)


def weighted_r(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r per column of ``x`` and ``y`` (t, K) with stimulus weights ``w`` (B, t): (B, K).
    Weights that are whole numbers make it the r of the resample they count."""
    x, y = x - x.mean(0), y - y.mean(0)  # shift-invariant; centring first keeps it accurate
    sw = w.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = w @ x / sw, w @ y / sw
        cxy = w @ (x * y) / sw - mx * my
        vx, vy = w @ (x * x) / sw - mx**2, w @ (y * y) / sw - my**2
        return cxy / np.sqrt(vx * vy)


def _ceiled(values: np.ndarray, ceiling) -> np.ndarray:
    c = float(ceiling)
    return values / c if np.isfinite(c) and c != 0 else values


def _same(mats: list[dict], keys: tuple[str, ...], what: str) -> None:
    first = mats[0]
    for m in mats[1:]:
        for k in keys:
            a, b = np.asarray(m[k]), np.asarray(first[k])
            nan = a.dtype.kind == "f" and b.dtype.kind == "f"
            if k in first and not np.array_equal(a, b, equal_nan=nan):
                raise NmncError(
                    f"{what}: the artefacts differ in '{k}' between models; "
                    "score every model with the same benchmark settings"
                )


def _rsa(mats: list[dict], draw: Draw) -> np.ndarray:
    """Each model's score on every resample of stimuli: the mean of its comparisons with each
    subject's RDM (``brain_rdms``; one brain RDM when there is one subject), divided by the
    ceiling; subjects stay fixed."""
    multi = ["brain_rdms" in m for m in mats]
    if any(multi) and not all(multi):
        raise NmncError(
            "RSA artefacts mix per-subject RDMs and mean RDMs (old and new scores of one "
            "benchmark); score every model again with the same benchmark version"
        )
    keys = ("stimuli", "brain_rdm", "method", "ceiling") + (("brain_rdms",) if all(multi) else ())
    _same(mats, keys, "RSA artefacts")
    first = mats[0]
    brain = first["brain_rdms"] if all(multi) else first["brain_rdm"]
    models = np.stack([m["model_rdm"] for m in mats])
    values = rsa.resampled(models, brain, str(first["method"]), draw(models.shape[-1]))
    return _ceiled(values, first["ceiling"])


def _neural(mats: list[dict], draw: Draw) -> np.ndarray:
    from .neural import headline

    if "ceilings" not in mats[0]:
        raise NmncError(
            "neural artefacts of an older benchmark version (before k-fold, cross-fitted "
            "scores); score the models again (the benchmark's version changed)"
        )
    counts_keys = [k for k in mats[0] if k.startswith(("n_", "blocks_", "folds_"))]
    _same(mats, ("sessions", "ceilings", *counts_keys), "neural artefacts")
    first = mats[0]
    n_sessions = len(first["sessions"])
    weights = [counts(draw(int(first[f"n_{i}"])), int(first[f"n_{i}"])) for i in range(n_sessions)]
    out = []
    for m in mats:
        per_block = []  # per block (cross-fitted half): (B, sessions) raw r
        for b in range(int(m["blocks_0"])):
            r = []
            for i, w in enumerate(weights):
                keys = [f"{i}_{b}_{j}" for j in range(int(m[f"folds_{i}_{b}"]))]
                with _quiet():  # median over neurons per fold, then mean over folds: (B,)
                    fold = [
                        weighted_r(w[:, m[f"pos_{k}"]], m[f"pred_{k}"], m[f"resp_{k}"])
                        for k in keys
                    ]
                    r.append(np.nanmean(np.stack([np.nanmedian(f, 1) for f in fold]), 0))
            per_block.append(headline(np.stack(r, 1), first["ceilings"]))
        out.append(np.mean(per_block, 0))  # the table's score: the mean over blocks
    return np.stack(out)


def _accuracy(mats: list[dict], draw: Draw) -> np.ndarray:
    common = mats[0]["index"]
    for m in mats[1:]:
        common = np.intersect1d(common, m["index"])
    if not len(common):
        raise NmncError("accuracy artefacts share no test images; evaluate on the same test subset")
    correct = np.stack(
        [np.asarray(m["correct"], np.float64)[np.searchsorted(m["index"], common)] for m in mats]
    )
    n = len(common)
    d = draw(n)
    out = np.empty((len(mats), len(d)))
    for start in range(0, len(d), 100):  # bounded memory for many test images
        w = counts(d[start : start + 100], n)
        out[:, start : start + 100] = correct @ w.T / w.sum(1)
    return out


KINDS = {"rsa": _rsa, "neural": _neural, "accuracy": _accuracy}


def _by_kind(mats: list[dict], draw: Draw) -> np.ndarray:
    kinds = {str(m["kind"]) for m in mats}
    if len(kinds) != 1 or next(iter(kinds)) not in KINDS:
        raise NmncError(f"artefacts of kinds {sorted(kinds)}; expected one of {sorted(KINDS)}")
    return KINDS[kinds.pop()](mats, draw)


def point_scores(mats: list[dict]) -> np.ndarray:
    """Each model's score on all its stimuli (what the results table holds): (M,)."""
    return _by_kind(mats, lambda n: np.arange(n)[None])[:, 0]


def stimulus_scores(mats: list[dict], n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Each model's score on the same ``n_boot`` resamples of stimuli: (M, n_boot)."""
    rng = np.random.default_rng(seed)
    return _by_kind(mats, lambda n: rng.integers(0, n, (n_boot, n)))


def seed_means(scores: list[np.ndarray], seed: int = 1) -> list[np.ndarray]:
    """Bootstrap values of the seed mean of each (S, B) score matrix, one seed draw (with
    replacement) per stimulus resample shared by all matrices: a list of (B,)."""
    S, B = scores[0].shape
    if any(s.shape != (S, B) for s in scores):
        raise NmncError("paired score matrices must have the same seeds and resamples")
    pick = np.random.default_rng(seed).integers(0, S, (B, S))
    rows = np.arange(B)[:, None]
    with _quiet():
        return [np.nanmean(s.T[rows, pick], 1) for s in scores]


def interval(values: np.ndarray) -> tuple[float, float]:
    """The central 95% percentile interval of bootstrap values (NaN when none is finite)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return np.nan, np.nan
    lo, hi = np.percentile(v, [(100 - LEVEL) / 2, (100 + LEVEL) / 2])
    return float(lo), float(hi)


def t_interval(values) -> tuple[float, float]:
    """95% t-interval of the mean of ``values`` (NaN for fewer than two)."""
    from scipy.stats import t

    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return np.nan, np.nan
    half = t.ppf(0.5 + LEVEL / 200, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def paired(a: np.ndarray, b: np.ndarray, seed: int = 1) -> dict:
    """Bootstrap of the difference of seed means of ``a`` and ``b`` (S, B) (row s of both is seed
    s): its 95% interval and rsatoolbox's two-sided bootstrap p."""
    ma, mb = seed_means([a, b], seed)
    lo, hi = interval(ma - mb)
    return {"ci_low": lo, "ci_high": hi, "p": rsa.pair_p(ma, mb)}


@contextmanager
def _quiet():
    """Silence numpy's warnings about all-NaN slices (a resample without a usable value)."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
