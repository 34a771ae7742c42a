"""Per-stimulus artefacts of scoring: written beside results.csv, recovered when missing, and
enough to give back each committed score (RSA and V4)."""

import numpy as np
import pytest

from brain_benchmarks import stats
from brain_benchmarks.artefacts import artefact_path, load_artefact
from brain_benchmarks.benchmarks import BenchmarkInfo, NeuralBenchmark
from brain_benchmarks.datasets import cowley2023
from brain_benchmarks.results import read_results
from brain_benchmarks.score import ScoreConfig, score

MONKEY = "Kriegeskorte2008.monkeyIT-rsa"


def test_scoring_keeps_artefacts_and_a_rerun_recovers_them(
    tmp_path, monkeypatch, data_root, capsys
):
    monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "scores"
    cfg = ScoreConfig(models=("pixels",), benchmarks=(MONKEY,), out=str(out), progress=False)
    (row,) = [r for r in score(cfg) if r.committed]
    path = artefact_path(out / "artefacts", MONKEY, 1, row.checkpoint_hash)
    material = load_artefact(path)
    assert str(material["layer"]) == row.layer and material["model_rdm"].shape == (46, 46)
    assert stats.point_scores([material])[0] == pytest.approx(row.score, abs=1e-12)
    path.unlink()  # a table scored before artefacts were kept
    capsys.readouterr()
    assert score(cfg) == []  # a rerun skips scored pairs
    err = capsys.readouterr().err
    assert "skipped pixels" in err and f"recovered its per-stimulus artefact {path}" in err
    again = load_artefact(path)
    assert np.array_equal(again["model_rdm"], material["model_rdm"])
    assert len(read_results(out / "results.csv")) == 2  # no new rows


def test_v4_artefact_gives_back_the_committed_score(data_root):
    (session,) = cowley2023(data_root, sessions=["210325"])
    session = {
        **session,
        "responses": session["responses"][:240],
        "trials": session["trials"][:, :240],
    }
    Y = session["responses"]
    X = Y[:, :10] @ np.random.default_rng(0).normal(size=(10, 30))
    X = X + np.random.default_rng(1).normal(scale=X.std(), size=X.shape)
    bench = NeuralBenchmark(
        BenchmarkInfo("t", 1, "V4", "macaque"), [session], splits=3, max_features=0, n_boot=50
    )
    noise = np.random.default_rng(2).normal(size=X.shape)
    row = bench.score({"210325": {"f": X, "g": noise}})[-1]
    assert row.committed and row.layer == "f"  # both halves choose the informative layer
    m = row.material
    # two cross-fitted halves of 3 folds each, together every one of the 240 images once
    assert str(m["kind"]) == "neural" and m["pred_0_0_0"].shape[1] == Y.shape[1]
    held = np.concatenate([m[f"pos_0_{b}_{j}"] for b in range(2) for j in range(3)])
    assert np.array_equal(np.sort(held), np.arange(240))
    assert stats.point_scores([m])[0] == pytest.approx(row.score, abs=1e-9)
    boot = stats.stimulus_scores([m, m], n_boot=200)
    assert np.isfinite(boot).all() and np.array_equal(boot[0], boot[1])
    lo, hi = stats.interval(boot[0])
    assert lo < row.score < hi
    # the table's statistic: each half's r**2 / ceiling, averaged over the two halves
    (r_a,), (r_b,) = row.extra["r_by_half"]
    assert row.score == pytest.approx((r_a**2 + r_b**2) / 2 / row.ceiling)
