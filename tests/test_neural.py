"""Neural predictivity the Brain-Score way: our route against Brain-Score's own metric and
benchmark classes, and the ceiling's bootstrap."""

import json

import numpy as np
import pytest

from brain_benchmarks.base import SELECT, TEST, BenchmarkInfo
from brain_benchmarks.datasets import cowley2023
from brain_benchmarks.neural import NeuralBenchmark, session_r


@pytest.fixture(scope="module")
def small_v4(data_root):
    """Session 210325 cut to 160 images (its single trials kept): a ceiled V4 benchmark that
    scores in seconds."""
    (s,) = cowley2023(data_root, sessions=["210325"])
    idx = np.arange(160)
    s = {
        **s,
        "stimuli": s["stimuli"].subset(idx),
        "responses": s["responses"][idx],
        "trials": s["trials"][:, idx],
    }
    info = BenchmarkInfo("Small.V4-pls", 1, "V4", "macaque")
    return NeuralBenchmark(info, [s], splits=3, max_features=0, n_boot=200)


def test_our_pls_folds_are_brainscores_pls_metric(small_v4):
    from brain_benchmarks.brainscore_adapter import neuroid_assembly, pls_folds, pls_metric

    s = small_v4.sessions[0]
    Y = s["responses"][:, :12]
    X = Y @ np.random.default_rng(0).normal(size=(12, 40))
    X = X + np.random.default_rng(1).normal(scale=X.std(), size=X.shape)
    ids = s["stimuli"].ids
    fold_r, _ = pls_folds(X, Y, ids, 3)
    source = neuroid_assembly(X, ids, [f"f{i}" for i in range(X.shape[1])], "model")
    target = neuroid_assembly(Y, ids, [f"n{i:05d}" for i in range(Y.shape[1])])
    theirs = pls_metric(3)(source, target)
    assert 0.2 < session_r(fold_r) < 0.95  # neither trivial nor hopeless
    assert session_r(fold_r) == pytest.approx(float(theirs), abs=1e-9)


def test_both_routes_give_the_same_scores(small_v4, tmp_path):
    """Every layer's score and the committed score through brain_benchmarks.score equal the
    same numbers through Brain-Score's NeuralBenchmark and ModelCommitment."""
    from brain_benchmarks.brainscore_adapter import half_benchmarks, model_commitment
    from brain_benchmarks.models import resolve_model
    from brain_benchmarks.score import score_pair

    model = resolve_model("random:cnn@3", progress=False)
    rows = score_pair(model, small_v4, progress=False)
    halves = half_benchmarks(small_v4, tmp_path / "stimuli")
    ours = {r.layer: r.score for r in rows if not r.committed}
    theirs = {}
    for layer in model.layers:
        commitment, _ = model_commitment(
            f"test-{model.hash}-{layer}",
            model.net,
            model.layers,
            model.input_size,
            model.mean,
            model.std,
            {"V4": layer},
        )
        theirs[layer] = {h: float(b(commitment)) for h, b in halves.items()}
    for layer in model.layers:
        assert ours[layer] == pytest.approx(np.mean(list(theirs[layer].values())), abs=1e-6)
    committed = rows[-1]
    details = json.loads(committed.details)
    a, b = details["layer_a"], details["layer_b"]
    assert committed.score == pytest.approx((theirs[a][TEST] + theirs[b][SELECT]) / 2, abs=1e-6)


def test_ceiling_draws_are_centred_on_the_ceiling(data_root):
    """The bootstrap of the ceiling resamples images and neurons, never a trial into both halves:
    its draws centre on the ceiling itself (drawing repeats with replacement before the split
    gave 0.80-0.83 around a ceiling of 0.757)."""
    from brain_benchmarks.benchmarks import load_benchmark

    b = load_benchmark("Cowley2023.V4-pls", data_root, pca_images=10)
    ceiling, draws = b.ceilings()[0], b.draws()[0]["ceiling"]
    lo, mid, hi = np.percentile(draws, [2.5, 50, 97.5])
    assert lo < ceiling < hi and abs(mid - ceiling) < 0.02
    assert 0.02 < hi - lo < 0.3  # an interval, not a point and not everything
