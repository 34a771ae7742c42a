"""RSA on several subjects the rsatoolbox way: the score is the mean of per-subject comparisons,
normalised by the upper noise-ceiling bound; intervals from rsatoolbox's bootstraps."""

import numpy as np
import pytest
from rsatoolbox.rdm import RDMs
from rsatoolbox.rdm import compare as rsa_compare
from scipy.spatial.distance import squareform
from scipy.stats import rankdata

from brain_benchmarks import rsa
from brain_benchmarks.base import ALL, SELECT, TEST, BenchmarkInfo, pick
from brain_benchmarks.benchmarks import load_benchmark
from brain_benchmarks.similarity import RSABenchmark
from brain_benchmarks.stimuli import from_arrays


def subjects(n_subjects=10, n_stimuli=60, noise=0.5, seed=0, dims=50):
    """Features of a true representation, its RDM and one RDM per subject measured with
    independent noise on the features."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_stimuli, dims))
    noisy = [rsa.model_rdm(X + noise * rng.normal(size=X.shape)) for _ in range(n_subjects)]
    return X, rsa.model_rdm(X), np.stack(noisy)


def bench(rdms, method="spearman", n_boot=200) -> RSABenchmark:
    n = rdms.shape[-1]
    stimuli = from_arrays("synthetic", np.zeros((n, 2, 2, 3), np.uint8))
    return RSABenchmark(
        BenchmarkInfo("Synthetic.IT-rsa", 1, "IT", "macaque"), stimuli, rdms, method, n_boot
    )


def rsatoolbox_scores(model, rdms, method):
    """Each subject's comparison with the model, straight from rsatoolbox."""
    return rsa_compare(RDMs(model[None]), RDMs(rdms), method=method)[0]


def test_true_model_of_ten_subjects_scores_at_most_its_ceiling():
    X, true, rdms = subjects()  # the reviewer's set: 10 subjects, the true model noiseless
    b = bench(rdms)
    row = b.measure(true, "true", ALL)
    # the old scale: the model against the mean RDM, over a mean of per-subject comparisons
    old = rsa_compare(RDMs(true[None]), RDMs(rdms.mean(0)[None]), method="spearman")[0, 0]
    assert old / row.ceiling > 1.2
    assert row.ceiling == row.extra["ceiling_high"] and row.extra["subjects"] == 10
    low, high = row.extra["ceiling_low"], row.extra["ceiling_high"]
    assert 0.9 < row.score <= 1 and low <= row.raw_score <= high  # inside the band
    noisy = rsa.model_rdm(X + np.random.default_rng(5).normal(size=X.shape))
    assert b.measure(noisy, "noisy", ALL).score < row.score - 0.3
    # the upper bound is the best any RDM reaches: the subjects' mean ranks reach it exactly
    ranks = np.mean([rankdata(squareform(r, checks=False)) for r in rdms], 0)
    assert b.measure(squareform(ranks), "pooled", ALL).score == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(1)
    for _ in range(5):
        other = rsa.model_rdm(X + rng.normal(0, rng.uniform(0, 0.3), X.shape))
        assert b.measure(other, "other", TEST).score <= 1


@pytest.mark.parametrize(
    "method, name", [("spearman", "spearman"), ("kendall", "tau-a"), ("pearson", "corr")]
)
def test_raw_score_is_the_mean_of_rsatoolbox_comparisons(method, name):
    X, _, rdms = subjects(n_subjects=4, n_stimuli=24, noise=1.0, seed=2)
    model = rsa.model_rdm(X[:, :20])
    b = bench(rdms, method, n_boot=50)
    assert b.measure(model, "m", ALL).raw_score == pytest.approx(
        rsatoolbox_scores(model, rdms, name).mean(), abs=1e-12
    )
    idx = pick(24, TEST)
    expected = rsatoolbox_scores(rsa.subset(model, idx), rsa.subset(rdms, idx), name).mean()
    assert b.measure(model, "m", TEST).raw_score == pytest.approx(expected, abs=1e-12)
    ceiling = rsa.noise_ceiling(rsa.subset(rdms, idx), method)
    assert b.measure(model, "m", TEST).extra["ceiling_low"] == ceiling[0]


def test_resampled_values_are_rsatoolbox_subsamples():
    X, _, rdms = subjects(n_subjects=3, n_stimuli=15, noise=1.0, seed=3)
    model = rsa.model_rdm(X[:, :10])
    draws = np.random.default_rng(0).integers(0, 15, (5, 15))
    values = rsa.subject_values(model[None], rdms, "spearman", draws)[0]
    data = RDMs(rdms, pattern_descriptors={"index": np.arange(15)})
    pred = RDMs(model[None], pattern_descriptors={"index": np.arange(15)})
    for d, idx in enumerate(draws):
        sample = data.subsample_pattern("index", idx)
        expected = rsa_compare(pred.subsample_pattern("index", idx), sample, method="spearman")[0]
        assert values[d] == pytest.approx(expected, abs=1e-12)
    every = np.tile(np.arange(3), (5, 1))  # each subject drawn once: the plain mean
    assert rsa.resampled(model[None], rdms, "spearman", draws, every)[0] == pytest.approx(
        values.mean(1), abs=1e-12
    )


def interval_of(n_stimuli: int, noise: float, model_noise: float):
    """The row of a model (the true features plus ``model_noise``) on 10 synthetic subjects."""
    X, _, rdms = subjects(n_stimuli=n_stimuli, noise=noise, seed=4)
    model = rsa.model_rdm(X + model_noise * np.random.default_rng(6).normal(size=X.shape))
    row = bench(rdms).measure(model, "m", ALL)
    assert row.ci_low < row.raw_score < row.ci_high
    assert row.extra["ci_method"] == rsa.DUAL
    return row.ci_high - row.ci_low


def test_interval_contains_the_score_and_narrows_with_stimuli_and_less_noise():
    assert interval_of(80, 0.7, 0.5) < 0.7 * interval_of(20, 0.7, 0.5)  # more stimuli
    assert interval_of(40, 0.3, 0.0) < 0.6 * interval_of(40, 1.2, 0.0)  # less noise in the data
    assert interval_of(40, 0.3, 0.0) < 0.6 * interval_of(40, 0.3, 0.5)  # ... or in the model


def test_dual_bootstrap_matches_rsatoolbox(monkeypatch):
    from rsatoolbox.inference import eval_dual_bootstrap
    from rsatoolbox.model import ModelFixed
    from scipy.stats import t

    monkeypatch.setenv("TQDM_DISABLE", "1")
    X, _, rdms = subjects(n_subjects=6, n_stimuli=16, noise=1.0, seed=7)
    model = rsa.model_rdm(X[:, :25])
    state = np.random.get_state()
    np.random.seed(0)  # rsatoolbox draws from numpy's global generator
    try:
        desc = {"index": np.arange(16)}
        data = RDMs(rdms, pattern_descriptors=desc)
        ref = eval_dual_bootstrap(
            ModelFixed("m", RDMs(model[None], pattern_descriptors=desc)), data, "spearman", N=150
        )
    finally:
        np.random.set_state(state)
    lo, hi = rsa.dual_bootstrap(model, rdms, "spearman", 1000)
    sem = (hi - lo) / 2 / t.ppf(0.975, 5)  # min(S, N) - 1 degrees of freedom
    # rsatoolbox's own estimate from 150 draws varies by about 5% with its seed
    assert sem == pytest.approx(ref.get_sem()[0], rel=0.15)
    assert (lo + hi) / 2 == pytest.approx(rsa.compare(model, rdms), abs=1e-12)


def test_single_rdm_benchmark_scores_as_before(data_root):
    b = load_benchmark("Kriegeskorte2008.monkeyIT-rsa", data_root)
    assert b.subjects == 1
    model = rsa.model_rdm(np.random.default_rng(0).normal(size=(92, 500)))
    row = b.measure(model, "m", ALL)
    assert row.raw_score == pytest.approx(
        rsatoolbox_scores(model, b.rdms, "spearman")[0], abs=1e-12
    )
    assert row.ceiling is None and row.score == row.raw_score
    assert row.extra["ceiling_low"] is None and row.extra["ci_method"] == rsa.PATTERN
    # the interval of the bootstrap over stimuli before several subjects were scored this way
    assert (row.ci_low, row.ci_high) == pytest.approx((-0.048291068134, 0.060697527552), abs=1e-9)
    material = b.measure(model, "m", TEST).material
    assert "brain_rdms" not in material
    assert np.array_equal(material["brain_rdm"], rsa.subset(b.rdms[0], pick(92, TEST)))


def test_committed_layer_is_chosen_on_one_half_and_scored_on_the_other():
    X, _, rdms = subjects(n_stimuli=40, seed=8)
    select, test = pick(40, SELECT), pick(40, TEST)
    noise = np.random.default_rng(9).normal(size=X.shape)
    good_on_select, good_on_test = noise.copy(), noise.copy()
    good_on_select[select], good_on_test[test] = X[select], X[test]
    b = bench(rdms)
    features = {"all": {"select": good_on_select, "test": good_on_test}}
    rows = b.score(features)
    committed = rows[-1]
    assert committed.committed and committed.layer == "select"
    assert committed.n_stimuli == len(test) and committed.extra["selected_on"] == "20 stimuli"
    alone = b.measure(rsa.model_rdm(good_on_select), "select", TEST)
    assert committed.raw_score == alone.raw_score < 0.2  # chosen on one half, poor on the other
    m = committed.material
    assert m["brain_rdms"].shape == (10, 20, 20)
    assert np.allclose(m["brain_rdm"], m["brain_rdms"].mean(0))
    again = rsa.resampled(m["model_rdm"][None], m["brain_rdms"], "spearman", np.arange(20)[None])
    assert again[0, 0] == pytest.approx(committed.raw_score, abs=1e-12)
