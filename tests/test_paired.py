"""Paired statistics: stimulus and seed resampling, differences.csv, summary intervals of the seed
mean, and test accuracy from real checkpoints."""

import numpy as np
import pandas as pd
import pytest

from brain_benchmarks import stats
from brain_benchmarks.artefacts import artefact_path, save_artefact
from brain_benchmarks.benchmarks import TEST, load_benchmark
from brain_benchmarks.paired import BOOT, committed_rows, paired_statistics
from brain_benchmarks.report import ReportConfig, build_report
from brain_benchmarks.results import ResultRow, append_rows

MONKEY = "Kriegeskorte2008.monkeyIT-rsa"


@pytest.fixture(scope="module")
def monkey(data_root):
    from brain_benchmarks.datasets import kriegeskorte2008

    bench = load_benchmark(MONKEY, data_root, n_boot=100)
    bench.human = kriegeskorte2008(data_root)["human"]
    return bench


def model_rdm(bench, human_weight: float, seed: int) -> np.ndarray:
    """A model RDM: the human IT RDM (monkey IT vs human IT: r = 0.44) blended with a random one."""
    human = bench.human
    noise = np.random.default_rng(seed).random(human.shape)
    noise = noise + noise.T
    np.fill_diagonal(noise, 0)
    return human_weight * human / human.max() + (1 - human_weight) * noise / noise.max()


def measured(bench, human_weight: float, seed: int):
    """The committed-style row (held-out half) of a blended model RDM, with its material."""
    return bench.measure(model_rdm(bench, human_weight, seed), "conv4", TEST)


def test_resampling_reproduces_scores_zero_for_identical_and_resolves_clear_differences(monkey):
    good = [measured(monkey, 0.6, s) for s in range(3)]
    bad = [measured(monkey, 0.0, 10 + s) for s in range(3)]
    mats = [r.material for r in good + bad]
    # on all stimuli the artefacts give back the results table's scores
    assert stats.point_scores(mats) == pytest.approx([r.score for r in good + bad], abs=1e-12)
    scores = stats.stimulus_scores(mats, n_boot=300, seed=0)
    assert scores.shape == (6, 300)
    a, b = scores[:3], scores[3:]
    same = stats.paired(a, a)
    assert (same["ci_low"], same["ci_high"], same["p"]) == (0.0, 0.0, 1.0)
    clear = stats.paired(a, b)
    assert 0 < clear["ci_low"] < clear["ci_high"] and clear["p"] < 0.01
    # one seed: only stimuli vary, and the interval is the scoring bootstrap's (same seed 0 draws)
    (one,) = stats.seed_means([scores[:1]])
    assert stats.interval(one) == pytest.approx(stats.interval(scores[0]))


def write_table(folder, bench, weights: dict[str, float], seeds=(0, 1, 2), same_as=None):
    """A results table with committed rows and artefacts, as brain_benchmarks.score writes them;
    ``same_as`` = {rule: other}: rule's runs are copies of other's (same RDMs, other hashes)."""
    rows = []
    for rule, w in weights.items():
        for seed in seeds:
            src = (same_as or {}).get(rule, rule)
            r = measured(bench, weights[src], 100 * list(weights).index(src) + seed)
            h = f"{rule}{seed}"
            save_artefact(
                artefact_path(folder / "artefacts", bench.id, bench.version, h),
                {**r.material, "layer": r.layer},
            )
            lo, hi = r.interval
            rows.append(
                ResultRow(
                    model=str(folder / f"{rule}_cnn_s{seed}"),
                    architecture="cnn",
                    rule=rule,
                    seed=seed,
                    checkpoint_hash=h,
                    benchmark=bench.id,
                    version=bench.version,
                    region="IT",
                    species="macaque",
                    layer=r.layer,
                    committed=True,
                    score=r.score,
                    ci_low=lo,
                    ci_high=hi,
                    raw_score=r.raw_score,
                    n_stimuli=r.n_stimuli,
                )
            )
    append_rows(folder / "results.csv", rows)
    return pd.read_csv(folder / "results.csv")


def test_report_writes_paired_differences_and_seed_mean_intervals(tmp_path, monkey):
    weights = {"bp": 1.0, "vnc": 0.3, "nmnc": 0.3, "readout": 0.0}
    df = write_table(tmp_path, monkey, weights, same_as={"vnc": "nmnc"})
    build_report(ReportConfig(str(tmp_path), out=str(tmp_path / "rep"), n_boot=200))
    d = pd.read_csv(tmp_path / "rep" / "differences.csv")
    assert {"benchmark", "a", "b", "diff", "ci_low", "ci_high"} <= set(d.columns)
    pairs = {(r.a, r.b): r for r in d.itertuples()}
    assert set(pairs) == {
        ("nmnc cnn", "vnc cnn"),
        ("nmnc cnn", "bp cnn"),
        ("bp cnn", "readout cnn"),
        ("vnc cnn", "readout cnn"),
        ("nmnc cnn", "readout cnn"),
    }
    same = pairs[("nmnc cnn", "vnc cnn")]  # identical RDMs: zero, with a zero-width interval
    assert (same.diff, same.ci_low, same.ci_high, same.resolved) == (0.0, 0.0, 0.0, False)
    assert same.claim.startswith("NMNC \u2212 VNC on monkey IT: +0.000 [+0.000, +0.000] over 3")
    assert same.claim.endswith("NMNC does not beat VNC at this budget: not resolved.")
    above = pairs[("bp cnn", "readout cnn")]
    assert above.ci_low > 0 and above.resolved and "BP beats read-out-only, resolved" in above.claim
    below = pairs[("nmnc cnn", "bp cnn")]
    assert below.ci_high < 0 and "NMNC does not beat BP (BP is higher), resolved" in below.claim
    bp = df[df.rule == "bp"]
    assert pairs[("bp cnn", "readout cnn")].diff == pytest.approx(
        bp.score.mean() - df[df.rule == "readout"].score.mean()
    )
    assert (d.n_seeds == 3).all() and (d.method == BOOT).all()
    summary = pd.read_csv(tmp_path / "rep" / "summary.csv")
    assert (summary.n_seeds == 3).all() and (summary.ci_method == BOOT).all()
    s = summary.set_index("model")
    assert s.loc["bp cnn", "score"] == pytest.approx(bp.score.mean())
    assert s.loc["bp cnn", "ci_low"] < bp.score.mean() < s.loc["bp cnn", "ci_high"]
    # the interval of the seed mean, not the mean of the runs' intervals
    assert s.loc["bp cnn", "ci_low"] != pytest.approx(bp.ci_low.mean())
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Paired differences" in md and same.claim in md and "differences.png" in md
    assert (tmp_path / "rep" / "differences.png").exists()
    # without read-out-only runs the comparisons against it are named as left out
    c = committed_rows(df[df.rule != "readout"])
    p = paired_statistics(c, {}, n_boot=100)
    assert len(p.differences) == 2 and any("No read-out-only runs" in n for n in p.notes)


def test_accuracy_is_resampled_over_test_images_of_real_checkpoints(tmp_path, data_root):
    from nmnc.checkpoint import load_checkpoint, save_checkpoint
    from nmnc.errors import run_cli
    from nmnc.train import main as train_main

    bp = tmp_path / "bp_cnn_s0"
    args = ["--out", str(bp), "--train-examples", "320", "--batch-size", "32", "--steps", "2"]
    sets = ["--set", "width=0.25", "--set", "eval_examples=200"]
    assert run_cli(train_main, [*args, "--quiet", *sets, "--data-root", str(data_root)]) == 0
    ckpt = load_checkpoint(bp)
    payload = dict(ckpt.payload, rule={**ckpt.payload["rule"], "name": "nmnc"})
    nmnc = tmp_path / "nmnc_cnn_s0"
    save_checkpoint(nmnc / "checkpoint.pt", payload)  # the same weights under another rule
    rows = [
        ResultRow(
            str(run), "cnn", rule, 0, ckpt.weights_hash, MONKEY, 1, "IT", "macaque", "c", True, 0.1
        )
        for rule, run in (("bp", bp), ("nmnc", nmnc))
    ]
    append_rows(tmp_path / "results.csv", rows)
    cfg = ReportConfig(
        str(tmp_path), out=str(tmp_path / "rep"), data_root=str(data_root), n_boot=100
    )
    build_report(cfg)
    summary = pd.read_csv(tmp_path / "rep" / "summary.csv")
    acc = summary[summary.benchmark == "cifar10-test-accuracy"].set_index("model")
    # the trainer's own evaluation on the same 200 test images
    assert acc.loc["bp cnn", "score"] == pytest.approx(ckpt.test_acc) and acc.n_seeds.max() == 1
    d = pd.read_csv(tmp_path / "rep" / "differences.csv")
    row = d[d.benchmark == "cifar10-test-accuracy"].iloc[0]
    assert (row.a, row.b, row["diff"], row.ci_low, row.ci_high) == ("nmnc cnn", "bp cnn", 0, 0, 0)
    cached = next((tmp_path / "rep" / "artefacts").rglob("*.npz"))
    stamp = cached.stat().st_mtime_ns
    build_report(cfg)  # built again: the per-image correctness comes from the cache
    assert cached.stat().st_mtime_ns == stamp
