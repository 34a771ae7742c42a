import json
import time
from pathlib import Path

import pytest

from nmnc.errors import NmncError, UnknownNameError, run_cli

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "train_examples": 320,
    "batch_size": 32,
    "width": 0.25,
    "P": 2,
    "k": 4,
    "eval_every": 10,
    "eval_examples": 100,
}


@pytest.fixture()
def zoo(tmp_path, monkeypatch, data_root):
    monkeypatch.setenv("NMNC_ZOO", str(tmp_path / "zoo"))
    from model_zoo import BuildConfig, build_entry

    return build_entry(BuildConfig("nmnc_cnn", gpu=False, sets=TINY, progress=False))


def test_unknown_and_missing(tmp_path, monkeypatch, capsys):
    from model_zoo.__main__ import main as zoo_main
    from model_zoo.registry import weights

    monkeypatch.setenv("NMNC_ZOO", str(tmp_path / "zoo"))
    with pytest.raises(UnknownNameError, match="did you mean 'nmnc_cnn'"):
        weights("nmnc_cnm")
    with pytest.raises(NmncError, match="python -m model_zoo build bp_resnet"):
        weights("bp_resnet")
    assert run_cli(zoo_main, ["--list"]) == 0
    out = capsys.readouterr().out
    assert all(
        n in out
        for n in ("bp_cnn", "vnc_cnn", "nmnc_cnn", "bp_resnet", "vnc_resnet", "nmnc_resnet")
    )


def test_build_records_identifier_that_follows_weights(zoo, tmp_path):
    from model_zoo.registry import identifier, record
    from nmnc.training.trainer import resume

    rec = record("nmnc_cnn")
    assert rec["identifier"] == identifier("nmnc_cnn") and rec["identifier"].startswith("nmnc_cnn-")
    assert (
        rec["test_acc"] is not None
        and rec["recipe"] == "cnn-cpu"
        and rec["settings"]["rule.P"] == 2
    )
    from model_zoo import BuildConfig, build_entry

    with pytest.raises(NmncError, match=r"holds a run with other settings \(rule.P: 2 -> 3\)"):
        build_entry(BuildConfig("nmnc_cnn", gpu=False, sets={**TINY, "P": 3}, progress=False))
    resume(tmp_path / "zoo" / "nmnc_cnn", progress=False, steps=12)  # the weights change
    assert identifier("nmnc_cnn") != rec["identifier"]


def test_in_process_registration_and_public_benchmark_offline_error(
    zoo, tmp_path, monkeypatch, capsys
):
    from brain_benchmarks.brainscore_adapter import model_commitment
    from brain_benchmarks.models import resolve_model
    from brain_benchmarks.score import main as score_main

    m = resolve_model("nmnc_cnn", build=False)
    model, region_map = model_commitment(
        "nmnc-test", m.net, m.layers, m.input_size, m.mean, m.std, {"V4": "conv3"}
    )
    # V4 is fixed; the other regions are left to Brain-Score's own selection, made lazily
    assert model.identifier == "nmnc-test" and model.layer_model.region_layer_map["V4"] == "conv3"
    assert dict(region_map) == {"V4": "conv3"} and hasattr(region_map, "layer_selection")
    monkeypatch.setenv("BRAINIO_HOME", str(tmp_path / "brainio"))
    t = time.time()
    code = run_cli(
        score_main, ["--model", "nmnc_cnn", "--benchmark", "MajajHong2015public.IT-pls", "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == 2 and time.time() - t < 30
    assert (
        "MajajHong2015public.IT-pls needs Brain-Score's public data files" in err
        and "assy_dicarlo_MajajHong2015_public.nc" in err
    )
    assert "botocore" not in err and "Traceback" not in err


def test_print_config_and_repeated_sets(tmp_path, monkeypatch, capsys):
    """--set accumulates the same way in model_zoo.build and nmnc.train; --print-config does no
    work."""
    from model_zoo.build import main as build_main
    from nmnc.train import main as train_main

    monkeypatch.setenv("NMNC_ZOO", str(tmp_path / "zoo"))
    assert run_cli(build_main, ["nmnc_cnn", "--set", "P=2", "--set", "k=4", "--print-config"]) == 0
    zoo_cfg = json.loads(capsys.readouterr().out)
    assert (
        run_cli(
            train_main,
            [
                "--model",
                "cnn",
                "--rule",
                "nmnc",
                "--set",
                "P=2",
                "--set",
                "k=4",
                "--out",
                str(tmp_path / "D"),
                "--print-config",
            ],
        )
        == 0
    )
    train_cfg = json.loads(capsys.readouterr().out)
    for cfg in (zoo_cfg, train_cfg):
        assert cfg["rule_settings"]["P"] == 2 and cfg["rule_settings"]["k"] == 4
    assert zoo_cfg["train_examples"] == 10000 and zoo_cfg["out"] == str(
        tmp_path / "zoo" / "nmnc_cnn"
    )
    assert not (tmp_path / "zoo").exists() and not (tmp_path / "D").exists()
    assert run_cli(train_main, ["--set", "train.lrr=0.1", "--out", str(tmp_path / "D")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean 'lr'" in err[0]
    assert run_cli(build_main, ["nmnc_cnn", "--gpu", "--cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --cpu: not allowed with argument --gpu" in err[0]


ZOO_NAMES = ["bp_cnn", "vnc_cnn", "nmnc_cnn", "bp_resnet", "vnc_resnet", "nmnc_resnet"]
TINY_BUILD = [
    "--set",
    "run.train_examples=64",
    "--set",
    "run.steps=2",
    "--set",
    "run.batch_size=16",
    "--set",
    "run.eval_examples=100",
    "--set",
    "run.width=0.125",
]


@pytest.mark.parametrize("name", ZOO_NAMES + ["random:cnn", "random:resnet", "random:alexnet"])
def test_every_zoo_entry_and_random_arch_builds_and_scores(
    name, tmp_path, monkeypatch, capsys, data_root
):
    """On an empty zoo a zoo name is built from its recipe (tiny here) and scored; random:<arch>
    scores as is."""
    from brain_benchmarks.score import main as score_main

    monkeypatch.setenv("NMNC_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "scores"
    code = run_cli(
        score_main,
        [
            "--model",
            name,
            "--benchmark",
            "Kriegeskorte2008.monkeyIT-rsa",
            "--out",
            str(out),
            "--quiet",
            *([] if name.startswith("random:") else TINY_BUILD),  # run.* sets zoo builds only
        ],
    )
    err = capsys.readouterr().err
    assert code == 0, err
    import pandas as pd

    df = pd.read_csv(out / "results.csv")
    committed = df[df.committed.astype(str).str.lower() == "true"]
    assert len(committed) == 1 and committed.score.notna().all() and (df.region == "IT").all()
    if not name.startswith("random:"):
        assert (
            "building it now from recipe" in err
            and (tmp_path / "zoo" / name / "entry.json").exists()
        )


def test_no_build_is_a_fast_one_line_error(tmp_path, monkeypatch, capsys):
    from brain_benchmarks.score import main as score_main

    monkeypatch.setenv("NMNC_ZOO", str(tmp_path / "zoo"))
    t = time.time()
    code = run_cli(
        score_main,
        [
            "--model",
            "nmnc_resnet",
            "--benchmark",
            "Kriegeskorte2008.monkeyIT-rsa",
            "--out",
            str(tmp_path / "o"),
            "--no-build",
        ],
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and time.time() - t < 20 and len(err) == 1
    assert "nmnc_resnet" in err[0] and "python -m model_zoo build nmnc_resnet" in err[0]
    assert not (tmp_path / "zoo" / "nmnc_resnet").exists()
