import json
import multiprocessing as mp

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brain_benchmarks import rsa
from brain_benchmarks.benchmarks import (
    BenchmarkInfo,
    NeuralBenchmark,
    from_folder_spec,
    load_benchmark,
    split_half_reliability,
)
from brain_benchmarks.datasets import cowley2023, kriegeskorte2008
from brain_benchmarks.extract import extract
from brain_benchmarks.models import resolve_model
from brain_benchmarks.results import COLUMNS, ResultRow, append_rows, read_results
from brain_benchmarks.score import OFFLINE, ScoreConfig, score
from brain_benchmarks.score import main as score_main
from brain_benchmarks.stimuli import from_arrays
from nmnc.errors import DataError, NmncError, UnknownNameError, run_cli

V4_ONE_SESSION = {  # 640 and 400 images: V4 scoring in seconds
    "Cowley2023.V4-pls": {"sessions": ["210325"]},
    "Cowley2023.V4-pls-raw": {"sessions": ["210305"]},
}


def tiny_run(run) -> None:
    """A 2-step BP cnn (width 0.25) trained into ``run``."""
    from nmnc.train import main as train_main

    args = ["--out", str(run), "--train-examples", "320", "--batch-size", "32", "--steps", "2"]
    assert run_cli(train_main, [*args, "--quiet", "--set", "width=0.25"]) == 0


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty zoo and activation cache, so no test reads or builds models elsewhere."""
    monkeypatch.setenv("NMNC_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture(scope="module")
def k92(data_root):
    return kriegeskorte2008(data_root)


def test_92_image_file_and_reference_agreement(k92):
    assert len(k92["stimuli"]) == 92 and np.asarray(k92["stimuli"].read(0)).shape == (175, 175, 3)
    assert k92["monkey"].shape == (92, 92) and k92["human"].shape == (92, 92)
    assert k92["categories"]["animate"].sum() == 48
    # the data README's figure: monkey IT vs human IT, Spearman over the 4186 pairs, 0.44
    assert rsa.compare(k92["monkey"], k92["human"]) == pytest.approx(0.44, abs=0.01)
    animate = k92["categories"]["animate"].astype(float)
    model = (animate[:, None] != animate[None, :]).astype(float)
    assert rsa.compare(model, k92["monkey"]) == pytest.approx(0.45, abs=0.01)


def test_rdm_with_itself_scores_one_and_shuffled_scores_zero(k92):
    brain = k92["monkey"]
    assert rsa.compare(brain, brain) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    shuffled = []
    for _ in range(20):
        p = rng.permutation(92)
        shuffled.append(rsa.compare(brain[np.ix_(p, p)], brain))
    assert abs(np.mean(shuffled)) < 0.03 and max(abs(s) for s in shuffled) < 0.15
    lo, hi = rsa.bootstrap(brain, brain, n=50)
    assert lo > 0.99 and hi <= 1.0 + 1e-9


def test_model_rdm_is_correlation_distance():
    X = np.random.default_rng(0).normal(size=(10, 30))
    r = rsa.model_rdm(X)
    assert np.allclose(r, 1 - np.corrcoef(X))


def test_noise_ceiling_for_several_rdms():
    rng = np.random.default_rng(0)
    base = rng.random((20, 20))
    base = base + base.T
    subjects = np.stack([base + 0.3 * (lambda a: a + a.T)(rng.random((20, 20))) for _ in range(5)])
    for s in subjects:
        np.fill_diagonal(s, 0)
    lo, hi = rsa.noise_ceiling(subjects)
    assert 0 < lo < hi <= 1


def test_linear_map_of_responses_gives_near_ceiling_predictivity(data_root):
    (session,) = cowley2023(data_root, sessions=["210325"])
    Y = session["responses"][:, :20]  # (images, neurons): 20 neurons, within PLS's 25 components
    X = Y @ np.random.default_rng(0).normal(size=(Y.shape[1], 80))
    bench = NeuralBenchmark(BenchmarkInfo("t", 1, "V4", "macaque"), [session], splits=3)
    from brain_benchmarks.brainscore_adapter import pls_folds

    fold_r, folds = pls_folds(X, Y, session["stimuli"].ids, splits=3)
    assert fold_r.shape == (3, 20)
    # k-fold: every image is held out exactly once
    held = np.sort(np.concatenate([pos for pos, _, _ in folds]))
    assert np.array_equal(held, np.arange(len(Y)))
    ceiling = bench.ceiling()
    # the data README: split-half reliability about 0.6 (0.75 after Spearman-Brown)
    assert 0.45 < ceiling < 0.85
    # features spanning the responses predict them almost perfectly: at (indeed above) the ceiling
    assert np.median(fold_r) > 0.95 > ceiling
    noise = np.random.default_rng(1).normal(size=X.shape)
    assert np.median(pls_folds(noise, Y, session["stimuli"].ids, splits=3)[0]) < 0.15


def test_split_half_reliability_of_known_signal():
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(5, 200, 1))
    trials = signal + rng.normal(
        size=(5, 200, 10)
    )  # per-trial SNR 1: reliability of the mean 10/11
    trials[:, :20, 7:] = np.nan
    rel = split_half_reliability(trials)
    assert np.allclose(rel, 10 / 11, atol=0.05)


def _user_folder(tmp_path, k92, condensed=False, shuffle=None):
    folder = tmp_path / "bench"
    (folder / "stimuli").mkdir(parents=True)
    names = []
    for i in range(92):
        name = f"img_{i:03d}.png"
        Image.fromarray(np.asarray(k92["stimuli"].read(i))).save(folder / "stimuli" / name)
        names.append(name)
    rdm = k92["monkey"]
    if condensed:
        from scipy.spatial.distance import squareform

        rdm = squareform(rdm, checks=False)
    np.save(folder / "rdms.npy", rdm)
    (folder / "benchmark.json").write_text(
        json.dumps(
            {
                "name": "My.monkeyIT-rsa",
                "region": "IT",
                "species": "macaque",
                "kind": "rsa",
                "stimuli": names,
            }
        )
    )
    return folder


def test_user_folder_matches_builtin(tmp_path, k92, data_root):
    folder = _user_folder(tmp_path, k92, condensed=True)
    rows_user = score(ScoreConfig(("random:cnn",), (str(folder),), str(data_root), progress=False))
    rows_built = score(
        ScoreConfig(
            ("random:cnn",), ("Kriegeskorte2008.monkeyIT-rsa",), str(data_root), progress=False
        )
    )
    assert len(rows_user) == len(rows_built) == 5  # 4 layers + the committed one
    for a, b in zip(rows_user, rows_built):
        assert a.layer == b.layer and a.committed == b.committed
        assert a.score == pytest.approx(b.score, abs=1e-6)
        assert (a.region, a.species) == (b.region, b.species) == ("IT", "macaque")


def test_malformed_user_benchmarks(tmp_path, k92):
    folder = _user_folder(tmp_path, k92)
    np.save(folder / "rdms.npy", np.zeros((92, 91)))
    with pytest.raises(DataError, match="RDMs must be N x N"):
        from_folder_spec(folder)
    np.save(folder / "rdms.npy", np.zeros((50, 50)))
    with pytest.raises(DataError, match="50 x 50 but there are 92 stimuli"):
        from_folder_spec(folder)
    bad = k92["monkey"].copy()
    bad[0, 1] = bad[1, 0] = np.nan
    np.save(folder / "rdms.npy", bad)
    with pytest.raises(DataError, match="NaN"):
        from_folder_spec(folder)
    (folder / "rdms.npy").unlink()
    with pytest.raises(DataError, match="needs rdms.npy"):
        from_folder_spec(folder)
    meta = json.loads((folder / "benchmark.json").read_text())
    meta["kind"] = "neural"
    (folder / "benchmark.json").write_text(json.dumps(meta))
    np.save(folder / "responses.npy", np.full((3, 92), np.nan))
    with pytest.raises(DataError, match="NaN is allowed only for missing repeats"):
        from_folder_spec(folder)
    np.save(folder / "responses.npy", np.zeros((3, 90)))
    with pytest.raises(DataError, match="expected neurons x 92 images"):
        from_folder_spec(folder)
    del meta["region"]
    (folder / "benchmark.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="lacks region"):
        from_folder_spec(folder)
    meta["stimuli"] = ["nope.png"]
    meta["region"] = "IT"
    (folder / "benchmark.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="missing"):
        from_folder_spec(folder)
    with pytest.raises(UnknownNameError, match="did you mean 'Kriegeskorte2008.monkeyIT-rsa'"):
        load_benchmark("Kriegeskorte2008.monkeyIT-rs")
    # a benchmark's options are its settings: unknown keys and sessions fail before any data is read
    with pytest.raises(
        UnknownNameError,
        match="unknown .* setting 'sesions'.*choose from: max_features, pca_images, sessions, "
        "splits",
    ):
        load_benchmark("Cowley2023.V4-pls", tmp_path / "nothing", sesions=["210325"])
    with pytest.raises(UnknownNameError, match="session '999'.*190923"):
        load_benchmark("Cowley2023.V4-pls", tmp_path / "nothing", sessions=["999"])


def test_neural_user_benchmark_with_repeats(tmp_path, data_root):
    (session,) = cowley2023(data_root, sessions=["210325"])
    folder = tmp_path / "v4"
    (folder / "stimuli").mkdir(parents=True)
    for i in range(60):
        session["stimuli"].read(i).save(folder / "stimuli" / f"{i:03d}.png")
    np.save(folder / "responses.npy", session["trials"][:10, :60])
    (folder / "benchmark.json").write_text(
        json.dumps(
            {
                "name": "Mine.V4-pls",
                "region": "V4",
                "species": "macaque",
                "kind": "neural",
                "splits": 3,
            }
        )
    )
    b = from_folder_spec(folder)
    assert b.kind == "neural" and b.ceiling() is not None
    assert (b.id, b.version, b.region, b.species) == ("Mine.V4-pls", 1, "V4", "macaque")
    rows = score(ScoreConfig(("pixels",), (str(folder),), progress=False))
    assert rows[-1].committed and rows[-1].ceiling is not None
    # cross-fitted: each half scored with the layer chosen on the other, so all 60 images count
    details = json.loads(rows[-1].details)
    assert rows[-1].n_stimuli == 60 and details["selected_on"].startswith("cross-fit")


def test_missing_data_is_a_clear_offline_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
    with pytest.raises(
        DataError,
        match=(
            r"Kriegeskorte2008.monkeyIT-rsa needs kriegeskorte2008_92images/"
            r".*put it at .*--download"
        ),
    ):
        load_benchmark("Kriegeskorte2008.monkeyIT-rsa", tmp_path)


def test_benchmark_data_download_from_local_mirror(tmp_path, monkeypatch, data_root):
    import hashlib
    import http.server
    import shutil
    import threading

    import brain_benchmarks.datasets as ds

    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(data_root / ds.KRIEGESKORTE_FILE, served / "k.mat")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **k)  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
        monkeypatch.setattr(
            ds, "KRIEGESKORTE_URL", f"http://127.0.0.1:{srv.server_address[1]}/k.mat"
        )
        d = ds.kriegeskorte2008(tmp_path / "empty", download=True)
        assert d["monkey"].shape == (92, 92)
        cached = tmp_path / "cache" / "data" / ds.KRIEGESKORTE_FILE
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == ds.KRIEGESKORTE_SHA
    finally:
        srv.shutdown()


def _append(path, k):
    append_rows(
        path,
        [
            {"model": f"m{k}", "benchmark": "b", "layer": str(i), "committed": False, "score": i}
            for i in range(200)
        ],
    )


def test_concurrent_scorers_lose_no_rows(tmp_path):
    path = tmp_path / "results.csv"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_append, args=(path, k)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    df = read_results(path)
    assert len(df) == 800 and df.groupby("model").size().tolist() == [200] * 4


def test_extraction_cache_follows_weights(tmp_path, monkeypatch, data_root):
    import torch

    monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
    stim = from_arrays(
        "s", (np.random.default_rng(0).random((6, 40, 40, 3)) * 255).astype(np.uint8)
    )
    run = tmp_path / "run"
    tiny_run(run)
    m1 = resolve_model(str(run))
    f1 = np.array(extract(m1, stim, progress=False)["conv2"])
    # train further: new weights, new hash, fresh activations
    from nmnc.training.trainer import resume

    resume(run, progress=False, steps=4)
    m2 = resolve_model(str(run))
    assert m2.hash != m1.hash
    f2 = np.array(extract(m2, stim, progress=False)["conv2"])
    assert not np.allclose(f1, f2)
    with torch.no_grad():
        x = __import__("brain_benchmarks.extract", fromlist=["preprocess"]).preprocess(
            m2, [stim.read(i) for i in range(6)]
        )
        direct = m2.net.conv2(m2.net.conv1(x)).flatten(1).numpy()
    assert np.allclose(f2, direct, atol=1e-5)
    pooled = extract(m2, stim, ["conv2"], pool="avg", progress=False)["conv2"]
    assert pooled.shape == (6, 8)


def test_score_cli_end_to_end_on_tiny_checkpoint(isolated, data_root, capsys):

    tmp_path = isolated
    run = tmp_path / "run"
    tiny_run(run)
    capsys.readouterr()  # drop the training summary
    out = tmp_path / "scores"
    code = run_cli(
        score_main,
        [
            "--model",
            str(run),
            "--model",
            "pixels",
            "--benchmark",
            "Kriegeskorte2008.monkeyIT-rsa",
            "--out",
            str(out),
            "--json",
            "--quiet",
        ],
    )
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    ours = [r for r in rows if r["model"] == str(run)]
    assert len(ours) == 5 and sum(r["committed"] for r in ours) == 1  # 4 layers + the committed one
    assert all(set(COLUMNS) == set(r) for r in rows)
    committed = [r for r in ours if r["committed"]][0]
    assert (
        committed["n_stimuli"] == 46
        and committed["ci_low"] <= committed["score"] <= committed["ci_high"]
    )
    df = read_results(out / "results.csv")
    assert len(df) == len(rows) and set(df.model) == {str(run), "pixels"}
    pix = [r for r in rows if r["model"] == "pixels" and not r["committed"]][0]
    assert (
        0.0 < pix["score"] < 0.3
    )  # raw pixels vs monkey IT: weak (README: 0.14 at full resolution)
    assert run_cli(score_main, ["--model", "nothing-here"]) == 2
    assert "unknown model 'nothing-here'" in capsys.readouterr().err


def test_results_csv_has_region_and_species_for_every_builtin_row(isolated, data_root):
    out = isolated / "scores"
    rows = score(
        ScoreConfig(
            ("pixels",),
            OFFLINE,
            str(data_root),
            out=str(out),
            progress=False,
            bench_options=V4_ONE_SESSION,
        )
    )
    raw = pd.read_csv(
        out / "results.csv", dtype=str, keep_default_na=False
    )  # as written, nothing filled in
    assert (
        list(raw.columns) == COLUMNS and len(raw) == len(rows) == 8
    )  # 4 benchmarks x (pixels + committed)
    assert set(raw.benchmark) == set(OFFLINE)
    assert (raw.region != "").all() and (raw.species != "").all()
    expected = {
        "Kriegeskorte2008.monkeyIT-rsa": ("IT", "macaque"),
        "Kriegeskorte2008.humanIT-rsa": ("IT", "human"),
        "Cowley2023.V4-pls": ("V4", "macaque"),
        "Cowley2023.V4-pls-raw": ("V4", "macaque"),
    }
    assert {b: (r, s) for b, r, s in zip(raw.benchmark, raw.region, raw.species)} == expected
    v4 = [r for r in rows if r.benchmark == "Cowley2023.V4-pls"]
    assert v4[0].n_stimuli == 640 and v4[1].committed and v4[1].n_stimuli == 640
    # Brain-Score's scale: r**2 / ceiling with a ceiling, r**2 without; the raw r kept beside it
    raw_v4 = [r for r in rows if r.benchmark == "Cowley2023.V4-pls-raw"]
    assert v4[1].normalisation == "r2/ceiling" and raw_v4[1].normalisation == "r2"
    # each half's Brain-Score score r**2 / c, averaged over the two cross-fitted halves
    (r_a,), (r_b,) = json.loads(v4[1].details)["r_by_half"]
    assert v4[1].raw_score == pytest.approx((r_a + r_b) / 2)
    assert v4[1].score == pytest.approx((r_a**2 + r_b**2) / 2 / v4[1].ceiling)
    halves = np.array(json.loads(raw_v4[1].details)["r_by_half"])  # (halves, sessions)
    assert raw_v4[1].ceiling is None and raw_v4[1].score == pytest.approx((halves**2).mean())
    assert v4[1].ci_low <= v4[1].score <= v4[1].ci_high
    assert v4[1].raw_ci_low <= v4[1].raw_score <= v4[1].raw_ci_high


def test_old_tables_are_read_and_upgraded_to_every_column_when_appended(tmp_path):
    old = [c for c in COLUMNS if c not in ("region", "species")]
    path = tmp_path / "results.csv"
    path.write_text(
        ",".join(old)
        + "\n"
        + ",".join(
            {
                "model": "pixels",
                "benchmark": "Cowley2023.V4-pls",
                "layer": "pixels",
                "committed": "True",
                "score": "0.2",
            }.get(c, "")
            for c in old
        )
        + "\n"
    )
    row = ResultRow(
        "pixels",
        "pixels",
        "none",
        None,
        "px",
        "Mine.V4-pls",
        1,
        "V4",
        "macaque",
        "pixels",
        True,
        0.3,
    )
    df = read_results(path)
    assert list(df.region) == ["V4"] and list(df.species) == ["macaque"]  # from the registry
    append_rows(path, [row])
    # the table is rewritten with today's header, so no column of the new row is dropped
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    df = read_results(path)
    assert list(df.region) == ["V4", "V4"] and list(df.species) == ["macaque", "macaque"]
    assert list(df.score) == [0.2, 0.3] and list(df.model) == ["pixels", "pixels"]
    with pytest.raises(ValueError, match="no columns regoin"):
        append_rows(path, [{"model": "x", "regoin": "V4"}])


def test_typo_in_last_benchmark_fails_before_any_extraction(isolated, data_root, capsys):
    import time

    out = isolated / "scores"
    ok = [
        "--model",
        "pixels",
        "--benchmark",
        "Kriegeskorte2008.monkeyIT-rsa",
        "--out",
        str(out),
        "--quiet",
    ]
    assert run_cli(score_main, ok) == 0
    before = (out / "results.csv").read_text()
    assert len(before.splitlines()) == 3  # header, pixels, committed
    cached = sorted((isolated / "cache" / "activations").rglob("*.npy"))
    assert cached  # the activation cache is where an extraction would show
    t = time.perf_counter()
    code = run_cli(
        score_main,
        ok
        + [
            "--model",
            "random:cnn",
            "--benchmark",
            "Cowley2023.V4-pls",
            "Kriegeskorte2008.monkeyIT-rs",
        ],
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and time.perf_counter() - t < 10
    assert len(err.splitlines()) == 1 and "did you mean 'Kriegeskorte2008.monkeyIT-rsa'" in err
    assert (out / "results.csv").read_text() == before  # earlier rows kept, nothing added
    assert (
        sorted((isolated / "cache" / "activations").rglob("*.npy")) == cached
    )  # nothing was extracted
    # a bad model id later in the list also fails before any work
    assert run_cli(score_main, ok + ["--model", "random:cnn@x"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seed after '@' must be an integer" in err
    assert (out / "results.csv").read_text() == before


def test_rows_are_appended_per_pair_and_scored_pairs_skipped(isolated, data_root, capsys):
    out = isolated / "scores"
    args = [
        "--model",
        "pixels",
        "--benchmark",
        "Kriegeskorte2008.monkeyIT-rsa",
        "--out",
        str(out),
        "--quiet",
    ]
    # pixels is scored and written before the zoo model without weights fails (--no-build)
    assert run_cli(score_main, args + ["--model", "bp_cnn", "--no-build"]) == 2
    err = capsys.readouterr().err
    assert "zoo model 'bp_cnn' has no weights" in err and len(err.strip().splitlines()) == 1
    assert len(read_results(out / "results.csv")) == 2
    assert run_cli(score_main, args + ["--benchmark", "Kriegeskorte2008.humanIT-rsa"]) == 0
    skipped = [line for line in capsys.readouterr().err.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and "Kriegeskorte2008.monkeyIT-rsa" in skipped[0]
    df = read_results(out / "results.csv")
    assert len(df) == 4 and df.groupby("benchmark").size().tolist() == [2, 2]


def test_print_config_accumulates_flags_and_does_no_work(isolated, capsys):
    out = isolated / "scores"
    code = run_cli(
        score_main,
        [
            "--model",
            "pixels",
            "--benchmark",
            "Kriegeskorte2008.monkeyIT-rsa",
            "--model",
            "bp_cnn",
            "--benchmark",
            "Cowley2023.V4-pls",
            "Kriegeskorte2008.humanIT-rsa",
            "--out",
            str(out),
            "--set",
            "run.steps=3",
            "--set",
            "run.batch_size=16",
            "--no-build",
            "--print-config",
        ],
    )
    assert code == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["models"] == ["pixels", "bp_cnn"]
    assert cfg["benchmarks"] == [
        "Kriegeskorte2008.monkeyIT-rsa",
        "Cowley2023.V4-pls",
        "Kriegeskorte2008.humanIT-rsa",
    ]
    assert (
        cfg["run"] == {"steps": "3", "batch_size": "16"}
        and cfg["build"] is False
        and cfg["out"] == str(out)
    )
    assert (
        not out.exists() and not (isolated / "cache").exists() and not (isolated / "zoo").exists()
    )
    assert run_cli(score_main, ["--model", "pixels", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["benchmarks"] == list(OFFLINE)
    assert run_cli(score_main, ["--model", "pixels", "--set", "steps=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown --set key 'steps'" in err and "run.<key>" in err


def test_list_shows_models_then_benchmarks(isolated, capsys):
    assert run_cli(score_main, ["--list"]) == 0
    text = capsys.readouterr().out
    assert text.index("models:") < text.index("benchmarks:")
    for name in (
        "pixels",
        "random:cnn",
        "bp_cnn",
        "Cowley2023.V4-pls",
        "MajajHong2015public.IT-pls",
    ):
        assert name in text
    assert "no weights" in text  # the zoo here is empty
    from brain_benchmarks.benchmarks import PUBLIC_INFO
    from brain_benchmarks.brainscore_adapter import PUBLIC

    assert set(PUBLIC_INFO) == set(PUBLIC)  # every public benchmark has its region and species
    assert run_cli(score_main, ["--list-benchmarks"]) == 2  # the old flags are gone
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unrecognized arguments: --list-benchmarks" in err[0]


def test_model_ids(isolated, monkeypatch):
    import brain_benchmarks.models as models

    with pytest.raises(NmncError, match="seed after '@' must be an integer, e.g. random:cnn@1"):
        resolve_model("random:cnn@x")
    with pytest.raises(UnknownNameError, match="unknown architecture 'cn'.*did you mean 'cnn'"):
        resolve_model("random:cn")
    assert (
        resolve_model("random:cnn@1").seed == 1
        and resolve_model("random:cnn@1").hash != resolve_model("random:cnn").hash
    )
    px = resolve_model("pixels")
    assert px.hash.startswith("pixels-") and px.hash != "pixels-64"
    monkeypatch.setitem(models.PIXELS, "resize", "bilinear")
    assert resolve_model("pixels").hash != px.hash  # the cache key follows the preprocessing
