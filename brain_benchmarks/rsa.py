"""Representational similarity analysis; the only module that imports rsatoolbox.

Model RDMs use correlation distance; comparisons use Spearman's rho (default), Kendall's tau-a or
Pearson's r, all computed by rsatoolbox. Brain data are one RDM or several (subjects, sessions):
(N, N) or (S, N, N). A model's score is, as in rsatoolbox's evaluations, the mean over subjects of
its comparison with each subject's RDM. Several RDMs give rsatoolbox's noise ceiling band (lower:
each subject against the others pooled; upper: each subject against all pooled); the upper bound
is the best mean comparison any RDM can reach (exactly so for Spearman and Pearson), so no model
scores above it with those; with Kendall's tau-a the bound is approximate.

Intervals resample stimuli the way rsatoolbox's ``subsample_pattern`` does (pairs of a stimulus
with its own copy left out; fewer than 3 distinct stimuli give no value), with a seeded generator:
one RDM gets the percentile interval of the bootstrap over stimuli (the statistic of
``eval_bootstrap_pattern``); several get the dual bootstrap over stimuli and subjects of
``eval_dual_bootstrap`` (its three bootstraps combined by rsatoolbox's variance correction; the
score plus or minus t(min(S, N) - 1) standard errors). rsatoolbox's own loops also recompute the
noise ceiling three times on every draw (about a minute for 1000 draws of 10 subjects) and draw
from numpy's global random state; here the draws are seeded and the ceiling is computed once.
"""

from __future__ import annotations

import warnings

import numpy as np

METHODS = {"spearman": "spearman", "kendall": "tau-a", "tau-a": "tau-a", "pearson": "corr"}
PATTERN = "bootstrap over stimuli (percentile; rsatoolbox eval_bootstrap_pattern statistic)"
DUAL = "dual bootstrap over stimuli and subjects (t-interval; rsatoolbox eval_dual_bootstrap)"


def stack(brain: np.ndarray) -> np.ndarray:
    """Brain RDMs as (S, N, N) (one RDM (N, N) becomes S = 1)."""
    brain = np.asarray(brain, dtype=np.float64)
    return brain[None] if brain.ndim == 2 else brain


def model_rdm(features: np.ndarray) -> np.ndarray:
    """Correlation-distance RDM (N, N) of features (N, d)."""
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm

    X = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    const = X.std(1) == 0
    if const.any():  # a constant pattern has no correlation distance; a tiny ramp keeps it defined
        X = X.copy()
        X[const] += np.linspace(0, 1e-9, X.shape[1])
    rdm = calc_rdm(Dataset(X), method="correlation")
    return rdm.get_matrices()[0]


def pairs(idx) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each pair rsatoolbox compares on the stimuli ``idx`` (with repeats): the
    upper triangle of the sorted selection, pairs of a stimulus with its own copy left out."""
    idx = np.sort(np.asarray(idx))
    i, j = np.triu_indices(len(idx), 1)
    a, b = idx[i], idx[j]
    keep = a != b
    return a[keep], b[keep]


def _compare(models: np.ndarray, brains: np.ndarray, method: str) -> np.ndarray:
    """rsatoolbox's comparison of pair vectors: models (M, P) with brains (S, P) -> (M, S).
    Spearman is rsatoolbox's Pearson of the ranks (what its 'spearman' computes), the ranks taken
    in one call for all vectors: rsatoolbox ranks each vector in a call of its own."""
    from rsatoolbox.rdm import compare as rsa_compare
    from scipy.stats import rankdata

    name = METHODS[method]
    if name == "spearman":
        ranks = rankdata(np.concatenate([models, brains]), axis=1)
        models, brains, name = ranks[: len(models)], ranks[len(models) :], "corr"
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant vector: NaN
        return rsa_compare(models, brains, method=name)


def per_subject(model: np.ndarray, brain: np.ndarray, method: str = "spearman") -> np.ndarray:
    """The model RDM (N, N) compared with each brain RDM: (S,)."""
    brain = stack(brain)
    a, b = pairs(np.arange(brain.shape[-1]))
    return _compare(np.asarray(model, np.float64)[None, a, b], brain[:, a, b], method)[0]


def compare(model: np.ndarray, brain: np.ndarray, method: str = "spearman") -> float:
    """A model RDM's score: its mean comparison with the brain RDMs (N, N) or (S, N, N)."""
    return float(per_subject(model, brain, method).mean())


def subset(rdm: np.ndarray, idx) -> np.ndarray:
    """The RDM(s) restricted to the stimuli ``idx``."""
    idx = np.asarray(idx)
    return rdm[..., idx[:, None], idx[None, :]]


def subject_values(
    models: np.ndarray, brain: np.ndarray, method: str, draws: np.ndarray
) -> np.ndarray:
    """Each model RDM (M, N, N) compared with each brain RDM on each resample of stimuli
    ``draws`` (B, k): (M, B, S); NaN where a resample has fewer than 3 distinct stimuli."""
    models, brain = np.asarray(models, np.float64), stack(brain)
    out = np.full((len(models), len(draws), len(brain)), np.nan)
    for d, idx in enumerate(draws):
        if len(np.unique(idx)) < 3:
            continue
        a, b = pairs(idx)
        out[:, d] = _compare(models[:, a, b], brain[:, a, b], method)
    return out


def counts(picks: np.ndarray, n: int) -> np.ndarray:
    """How often each of ``n`` items appears in each draw: (B, n) from picks (B, k)."""
    B = len(picks)
    flat = (np.asarray(picks) + n * np.arange(B)[:, None]).ravel()
    return np.bincount(flat, minlength=B * n).reshape(B, n).astype(np.float64)


def resampled(
    models: np.ndarray,
    brain: np.ndarray,
    method: str,
    draws: np.ndarray,
    subjects: np.ndarray | None = None,
) -> np.ndarray:
    """The score of every model RDM (M, N, N) on each resample of stimuli ``draws`` (B, k): (M, B),
    all models on the same draws. The score is the mean over the brain RDMs (N, N) or (S, N, N);
    ``subjects`` (B, S), drawn subject indices, resamples the subjects too."""
    values = subject_values(models, brain, method, draws)
    if subjects is None:
        return values.mean(-1)
    w = counts(subjects, values.shape[-1])
    return (values * w[None]).sum(-1) / w.sum(1)


def _percentile(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return np.nan, np.nan
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def bootstrap(
    model: np.ndarray, brain: np.ndarray, method: str = "spearman", n: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of the score over ``n`` resamples of stimuli (subjects fixed)."""
    N = model.shape[-1]
    draws = np.random.default_rng(seed).integers(0, N, (n, N))
    return _percentile(resampled(model[None], brain, method, draws)[0])


def dual_bootstrap(
    model: np.ndarray, brain: np.ndarray, method: str = "spearman", n: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of the score of several brain RDMs (S, N, N) from rsatoolbox's dual bootstrap:
    the variances over ``n`` draws of stimuli and subjects together, subjects only and stimuli only
    combined by rsatoolbox's correction; the score plus or minus t(min(S, N) - 1) standard
    errors."""
    from rsatoolbox.util.inference_util import extract_variances
    from scipy.stats import t

    brain = stack(brain)
    S, N = brain.shape[0], brain.shape[-1]
    rng = np.random.default_rng(seed)
    draws, picks = rng.integers(0, N, (n, N)), rng.integers(0, S, (n, S))
    values = subject_values(np.asarray(model)[None], brain, method, draws)[0]  # (B, S)
    full = per_subject(model, brain, method)
    w = counts(picks, S) / S
    evals = np.stack([(values * w).sum(1), w @ full, values.mean(1)])  # both, subjects, stimuli
    evals = evals[:, np.isfinite(evals).all(0)]  # rsatoolbox drops draws without a value
    variances = evals.var(1, ddof=1)[:, None, None]  # one model's (1, 1) covariance per bootstrap
    var = extract_variances(variances, nc_included=False, n_rdm=S, n_pattern=N)[0][0]
    score = float(full.mean())
    half = float(t.ppf(0.975, min(S, N) - 1) * np.sqrt(max(var, 0.0)))
    return score - half, score + half


def interval(
    model: np.ndarray, brain: np.ndarray, method: str = "spearman", n: int = 1000, seed: int = 0
) -> tuple[float, float, str]:
    """The score's 95% interval and how it was computed: a bootstrap over stimuli for one brain
    RDM, the dual bootstrap over stimuli and subjects for several."""
    if len(stack(brain)) == 1:
        return (*bootstrap(model, brain, method, n, seed), PATTERN)
    return (*dual_bootstrap(model, brain, method, n, seed), DUAL)


def noise_ceiling(brain: np.ndarray, method: str = "spearman") -> tuple[float, float] | None:
    """rsatoolbox's (lower, upper) noise ceiling of several RDMs (S, N, N) for the comparison
    ``method``; None for one RDM."""
    brain = np.asarray(brain)
    if brain.ndim != 3 or brain.shape[0] < 2:
        return None
    from rsatoolbox.inference import boot_noise_ceiling
    from rsatoolbox.rdm import RDMs

    rdms = RDMs(brain.astype(np.float64), rdm_descriptors={"index": np.arange(len(brain))})
    with warnings.catch_warnings():  # tau-a: 'Noise ceiling for tau based on averaged ranks!'
        warnings.filterwarnings("ignore", message="Noise ceiling for tau")
        lo, hi = boot_noise_ceiling(rdms, method=METHODS[method], rdm_descriptor="index")
    return float(lo), float(hi)


def pair_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided bootstrap p of a difference from paired bootstrap values of two models
    (rsatoolbox's pairwise bootstrap test); 1 when the two never differ."""
    from rsatoolbox.util.inference_util import bootstrap_pair_tests

    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any() or np.all(a[ok] == b[ok]):
        return 1.0
    return float(bootstrap_pair_tests(np.stack([a[ok], b[ok]], 1))[0, 1])
