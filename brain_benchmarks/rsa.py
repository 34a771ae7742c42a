"""Representational similarity analysis; the only module that imports rsatoolbox.

Model RDMs use correlation distance; comparisons use Spearman's rho (default) or Kendall's tau-a;
95% intervals come from a bootstrap over stimuli; several brain RDMs (subjects, sessions) give a
leave-one-out noise ceiling (lower, upper) as rsatoolbox computes it.
"""

from __future__ import annotations

import numpy as np

METHODS = {"spearman": "spearman", "kendall": "tau-a", "tau-a": "tau-a", "pearson": "corr"}


def _rdms(mats: np.ndarray):
    from rsatoolbox.rdm import RDMs

    mats = np.asarray(mats, dtype=np.float64)
    if mats.ndim == 2:
        mats = mats[None]
    return RDMs(
        mats,
        dissimilarity_measure="brain",
        pattern_descriptors={"index": np.arange(mats.shape[-1])},
    )


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


def compare(model: np.ndarray, brain: np.ndarray, method: str = "spearman") -> float:
    """Similarity of a model RDM with the mean over brain RDMs (N, N) or (S, N, N)."""
    from rsatoolbox.rdm import compare as rsa_compare

    brain = np.asarray(brain)
    mean = brain.mean(0) if brain.ndim == 3 else brain
    return float(rsa_compare(_rdms(model), _rdms(mean), method=METHODS[method])[0, 0])


def subset(rdm: np.ndarray, idx) -> np.ndarray:
    """The RDM(s) restricted to the stimuli ``idx``."""
    idx = np.asarray(idx)
    return rdm[..., idx[:, None], idx[None, :]]


def bootstrap(
    model: np.ndarray, brain: np.ndarray, method: str = "spearman", n: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% interval from resampling stimuli with replacement (pairs of a stimulus with itself
    dropped)."""
    from scipy.stats import rankdata

    brain = np.asarray(brain)
    brain = brain.mean(0) if brain.ndim == 3 else brain
    N = model.shape[0]
    rng = np.random.default_rng(seed)
    iu = np.triu_indices(N, 1)
    vals = []
    for _ in range(n):
        idx = np.sort(rng.integers(0, N, N))
        i, j = idx[iu[0]], idx[iu[1]]
        keep = i != j
        a, b = model[i[keep], j[keep]], brain[i[keep], j[keep]]
        if method == "spearman":
            vals.append(np.corrcoef(rankdata(a), rankdata(b))[0, 1])
        elif method == "pearson":
            vals.append(np.corrcoef(a, b)[0, 1])
        else:
            # tau-b on the resampled pairs (equal to tau-a without ties; O(n log n) where tau-a is
            # O(n^2))
            from scipy.stats import kendalltau

            vals.append(kendalltau(a, b).statistic)
    lo, hi = np.nanpercentile(vals, [2.5, 97.5])
    return float(lo), float(hi)


def noise_ceiling(brain: np.ndarray, method: str = "spearman") -> tuple[float, float] | None:
    """Leave-one-out (lower, upper) noise ceiling for several RDMs (S, N, N); None for one."""
    brain = np.asarray(brain)
    if brain.ndim != 3 or brain.shape[0] < 2:
        return None
    from rsatoolbox.inference import boot_noise_ceiling
    from rsatoolbox.rdm import RDMs

    rdms = RDMs(brain.astype(np.float64), rdm_descriptors={"index": np.arange(len(brain))})
    lo, hi = boot_noise_ceiling(rdms, method=METHODS[method], rdm_descriptor="index")
    return float(lo), float(hi)


def resampled(models: np.ndarray, brain: np.ndarray, method: str, draws: np.ndarray) -> np.ndarray:
    """Similarity of every model RDM (M, N, N) with the brain RDM (N, N) on each resample of
    stimuli ``draws`` (B, N): (M, B). rsatoolbox subsamples the patterns (pairs of a stimulus with
    its own copy are left out) and compares all models on the same draw."""
    from rsatoolbox.rdm import RDMs
    from rsatoolbox.rdm import compare as rsa_compare

    n = models.shape[-1]
    descriptors = {"index": np.arange(n)}
    model_rdms = RDMs(
        np.asarray(models, np.float64),
        dissimilarity_measure="brain",
        pattern_descriptors=descriptors,
    )
    brain_rdm = _rdms(brain)
    out = np.full((len(models), len(draws)), np.nan)
    for b, idx in enumerate(draws):
        if len(np.unique(idx)) < 3:  # fewer than 3 distinct stimuli: no comparison (rsatoolbox)
            continue
        sample = brain_rdm.subsample_pattern("index", idx)
        pred = model_rdms.subsample_pattern("index", idx)
        out[:, b] = rsa_compare(pred, sample, method=METHODS[method])[:, 0]
    return out


def pair_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided bootstrap p of a difference from paired bootstrap values of two models
    (rsatoolbox's pairwise bootstrap test); 1 when the two never differ."""
    from rsatoolbox.util.inference_util import bootstrap_pair_tests

    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any() or np.all(a[ok] == b[ok]):
        return 1.0
    return float(bootstrap_pair_tests(np.stack([a[ok], b[ok]], 1))[0, 1])
