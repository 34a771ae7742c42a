import json
import os
import subprocess
import sys
import time
import zipfile
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


def test_plugin_contents_and_zip(zoo, tmp_path):
    from brain_benchmarks.results import append_rows
    from model_zoo import PluginConfig, write_plugin
    from model_zoo.registry import weights
    from nmnc.checkpoint import load_checkpoint

    h = load_checkpoint(weights("nmnc_cnn")).weights_hash
    append_rows(
        tmp_path / "results.csv",
        [
            {
                "model": "x",
                "checkpoint_hash": h,
                "benchmark": "Cowley2023.V4-pls",
                "layer": "conv3",
                "committed": True,
                "score": 0.5,
                "region": "V4",
                "species": "macaque",
            }
        ],
    )
    info = write_plugin(
        PluginConfig(
            "nmnc_cnn",
            str(tmp_path / "plugins"),
            "https://example.org/w.pt",
            str(tmp_path / "results.csv"),
        )
    )
    folder = Path(info["folder"])
    ident = info["identifier"]
    init = (folder / "__init__.py").read_text()
    assert f"model_registry['{ident}'] = lambda: ModelCommitment(" in init
    assert json.loads((folder / "region_layer_map" / f"{ident}.json").read_text())["V4"] == "conv3"
    model_py = (folder / "model.py").read_text()
    assert (
        "def get_model" in model_py
        and "def get_layers" in model_py
        and "def get_bibtex" in model_py
        and info["sha256"] in model_py
    )
    names = zipfile.ZipFile(info["zip"]).namelist()
    prefix = folder.name
    assert sorted(names) == sorted(
        f"{prefix}/{f}"
        for f in (
            "__init__.py",
            "model.py",
            "test.py",
            "requirements.txt",
            f"region_layer_map/{ident}.json",
        )
    )
    assert info["zip_bytes"] < 50 * 2**20


def _brainscore_copy(tmp: Path) -> Path:
    """A temporary brainscore_vision whose models/ folder we may add to (links to the installed
    files)."""
    import brainscore_vision

    src = Path(brainscore_vision.__file__).parent
    dst = tmp / "site" / "brainscore_vision"
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.name == "models":
            (dst / "models").mkdir()
            for m in item.iterdir():
                (dst / "models" / m.name).symlink_to(m)
        elif item.name != "__pycache__":
            (dst / item.name).symlink_to(item)
    return dst


SCRIPT = """
import sys, json
import brainscore_vision as bs
assert bs.__file__.startswith(sys.argv[1]), bs.__file__
from brain_benchmarks.brainscore_adapter import neural_benchmark, register_benchmark
from brain_benchmarks.datasets import cowley2023
from pathlib import Path
(s,) = cowley2023(sessions=["210325"])
s = {**s, "stimuli": s["stimuli"].subset(range(120)), "responses": s["responses"][:120, :10]}
register_benchmark(
    "Cowley2023.V4-pls",
    lambda: neural_benchmark(
        "Cowley2023.V4-pls", [s], "V4", Path(sys.argv[3]), ceiling=0.6, splits=2
    ),
)
model = bs.load_model(sys.argv[2])
score = bs.score(sys.argv[2], "Cowley2023.V4-pls")
print(json.dumps({"identifier": model.identifier, "score": float(score), "file": bs.__file__}))
"""


def test_generated_plugin_is_found_by_brainscore_loader_and_scores_v4(zoo, tmp_path, data_root):
    from model_zoo import PluginConfig, write_plugin

    info = write_plugin(
        PluginConfig("nmnc_cnn", str(tmp_path / "plugins"), results=None, bundle_weights=True)
    )
    copy = _brainscore_copy(tmp_path)
    import shutil

    shutil.copytree(info["folder"], copy / "models" / Path(info["folder"]).name)
    env = {
        **os.environ,
        "PYTHONPATH": f"{copy.parent}{os.pathsep}{ROOT}",
        "BS_INSTALL_DEPENDENCIES": "no",
        "RESULTCACHING_HOME": str(tmp_path / "rc"),
        "RESULTCACHING_DISABLE": "1",
    }
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(copy), info["identifier"], str(tmp_path / "stim")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["identifier"] == info["identifier"] and out["file"].startswith(str(copy))
    assert -1 <= out["score"] <= 2


def test_in_process_registration_and_public_benchmark_offline_error(
    zoo, tmp_path, monkeypatch, capsys
):
    import brainscore_vision as bs

    from brain_benchmarks.brainscore_adapter import register_zoo_model
    from brain_benchmarks.score import main as score_main

    ident = register_zoo_model("nmnc_cnn", {"V4": "conv3"})
    model = bs.load_model(ident)
    assert model.identifier == ident and model.layer_model.region_layer_map["V4"] == "conv3"
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
    with pytest.raises(SystemExit) as e:
        build_main(["nmnc_cnn", "--gpu", "--cpu"])
    assert e.value.code == 2


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
