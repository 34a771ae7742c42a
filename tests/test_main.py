"""The main job and experiments as data: validation before work, --print-config, and a tiny
experiment end to end (train, score, analyse, report; a rerun skips everything)."""

import json
import time

import pandas as pd
import pytest

from brain_benchmarks.main import main
from nmnc.errors import run_cli

TINY = """
name = "tiny"
title = "tiny experiment"

[train]
recipe = "cnn-quick"
rules = ["bp", "vnc", "nmnc", "readout"]
seeds = [0, 1]
select = { readout_lr = [0.05, 0.2], lr = [0.02, 0.1] }

[train.run]
val_examples = 100
steps = 3
train_examples = 256
batch_size = 32
width = 0.25
eval_every = 3
eval_examples = 100

[score]
benchmarks = ["Kriegeskorte2008.monkeyIT-rsa"]
baselines = ["pixels"]

[analysis]
alignment_rules = ["bp"]
images = 40
gradient_P = [1]
gradient_k = [4]
gradient_batch = 4
manifold_images = 32
widths = [0.25, 0.5]
width_run = { steps = 2, train_examples = 256, batch_size = 32, eval_every = 2 }

[recurrent]
recipe = "rnn-cpu"
rules = ["bp", "vnc", "nmnc", "readout"]
seeds = [0, 1]
select = { lr = [0.1, 0.5] }
gradient_P = [1]
gradient_k = [4]
gradient_batch = 4
manifold_sequences = 16
alignment_k = [2]

[recurrent.run]
val_examples = 32
steps = 3
width = 0.25
eval_every = 3
data = { train_sequences = 128, test_sequences = 48, seq_len = 50 }
"""


def experiment_args(path, tmp_path) -> list[str]:
    return ["--experiment", str(path), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "r")]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_print_config_shows_the_experiment_and_its_runs(capsys):
    assert (
        run_cli(main, ["--print-config", "--set", "train.seeds=0,1", "--set", "train.grid.P=2,4"])
        == 0
    )
    cfg = json.loads(capsys.readouterr().out)
    exp = cfg["main"]["experiment"]
    assert (
        exp["name"] == "default"
        and exp["train"]["recipe"] == "cnn-cpu"
        and exp["train"]["seeds"] == [0, 1]
    )
    runs = cfg["runs"]
    select = [r for r in runs if "/select/" in r["out"]]
    final = [r for r in runs if "/select/" not in r["out"]]
    # step sizes are chosen on the validation split: the read-out step on the control, then a
    # hidden step per rule (per grid point); every run holds out the same validation split
    assert select[0]["out"].endswith("select/readout_cnn_readout_lr0.05_s0")
    assert {r["rule"] for r in select} == {"readout", "bp", "vnc", "nmnc"}
    assert all(r["val_examples"] == 1000 for r in runs)
    names = [r["out"].split("/")[-1] for r in final]
    # bp and readout have no P: one run per seed; the noise rules get one run per grid point
    assert names[:6] == [
        "bp_cnn_s0",
        "vnc_cnn_P2_s0",
        "nmnc_cnn_P2_s0",
        "readout_cnn_s0",
        "vnc_cnn_P4_s0",
        "nmnc_cnn_P4_s0",
    ]
    assert len(names) == 12 and final[4]["rule_settings"]["P"] == 4


def test_every_builtin_experiment_and_recipe_validates():
    """Checked without data or training: each built-in experiment (ImageNet included: its runs are
    configured, never trained here) and each recipe for every rule."""
    from brain_benchmarks.experiment import builtin_names, load_experiment
    from nmnc.training.recipes import RECIPES, get_recipe

    assert {"default", "quick", "gpu", "imagenet"} <= set(builtin_names())
    for name in builtin_names():
        assert load_experiment(name).name == name
    imagenet = load_experiment("imagenet")
    assert "not been selected on a GPU" in imagenet.note
    assert set(imagenet.train.select) == {"readout_lr", "lr"}
    for name in RECIPES.names():
        recipe = get_recipe(name)
        for rule in ("bp", "vnc", "nmnc", "readout"):
            assert recipe.config(rule, "unused").model == recipe.model
    nmnc = get_recipe("resnet18-imagenet-gpu").config("nmnc", "unused")
    assert (nmnc.dataset, nmnc.batch_size, nmnc.rule_settings["P"]) == ("imagenet", 256, 16)


@pytest.mark.parametrize(
    "edit,needle",
    [
        ("images = 40", "[analysis]: unknown key 'imags' (did you mean 'images'?)"),
        ("lr = [0.02, 0.1] }", "[train] select.lr: give a non-empty list of positive numbers"),
        ('baselines = ["pixels"]', "[score] baselines/benchmarks: unknown model 'pixls'"),
        ("seeds = [0, 1]", "[train]: setting seeds='zero' is not a comma-separated list of int"),
        ('recipe = "cnn-quick"', "[train] recipe: unknown recipe 'cnn-quik'"),
        (
            'benchmarks = ["Kriegeskorte2008.monkeyIT-rsa"]',
            "[score] baselines/benchmarks: unknown benchmark 'Foo.IT-rsa'",
        ),
    ],
)
def test_a_bad_experiment_file_is_one_line_before_any_work(edit, needle, tmp_path, capsys):
    bad = {
        "images = 40": "imags = 40",
        "lr = [0.02, 0.1] }": 'lr = [0.02, "fast"] }',
        'baselines = ["pixels"]': 'baselines = ["pixls"]',
        "seeds = [0, 1]": 'seeds = "zero"',
        'recipe = "cnn-quick"': 'recipe = "cnn-quik"',
        'benchmarks = ["Kriegeskorte2008.monkeyIT-rsa"]': 'benchmarks = ["Foo.IT-rsa"]',
    }[edit]
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace(edit, bad))
    t = time.time()
    assert run_cli(main, experiment_args(path, tmp_path)) == 2
    assert needle in one_error_line(capsys) and time.time() - t < 20
    assert not (tmp_path / "w").exists() and not (tmp_path / "r").exists()


def test_tiny_experiment_end_to_end_and_rerun(tmp_path, data_root, capsys, monkeypatch):
    monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    args = [*experiment_args(path, tmp_path), "--quiet"]
    assert run_cli(main, args) == 0
    capsys.readouterr()
    report = tmp_path / "r" / "tiny"
    assert (report / "index.html").stat().st_size > 0 and (report / "report.md").exists()
    df = pd.read_csv(report / "results.csv")
    assert set(df.rule) == {"bp", "vnc", "nmnc", "readout", "none"} and (df.region == "IT").all()
    # the selection table: one row per candidate, one chosen per stage and rule
    sel = pd.read_csv(report / "selection.csv")
    assert len(sel) == 2 + 3 * 2 and sel.groupby("rule").selected.sum().eq(1).all()
    assert (sel[sel.setting == "lr"].fixed == f"readout_lr{sel[sel.selected].value.iloc[0]}").all()
    # the first seed's final run is the chosen selection run itself, not a retrained one
    from nmnc.checkpoint import load_checkpoint

    chosen = sel[(sel.rule == "nmnc") & sel.selected].run.iloc[0]
    final = tmp_path / "w" / "tiny" / "nmnc_cnn_s0"
    a, b = load_checkpoint(f"{chosen}/checkpoint.pt"), load_checkpoint(final / "checkpoint.pt")
    assert a.weights_hash == b.weights_hash and a.val_acc == b.val_acc
    # ...and that is legitimate: the two runs' settings are identical apart from the folder
    from nmnc.training import config_from_checkpoint
    from nmnc.training.trainer import config_differences

    same = config_differences(config_from_checkpoint(a), config_from_checkpoint(b))
    assert same == [] and config_from_checkpoint(b).seed == 0
    # the other seeds train at the chosen step sizes
    s1 = config_from_checkpoint(load_checkpoint(tmp_path / "w/tiny/nmnc_cnn_s1/checkpoint.pt"))
    assert s1.seed == 1 and config_differences(config_from_checkpoint(a), s1) == ["seed: 0 -> 1"]
    # one row per final run, with its committed score joined on the weights hash
    cells = pd.read_csv(report / "cells.csv")
    assert len(cells) == 8 and cells["Kriegeskorte2008.monkeyIT-rsa"].notna().all()
    assert (cells.steps == 3).all() and set(cells.rule) == {"bp", "vnc", "nmnc", "readout"}
    for folder in ("analysis_bp", "gradient", "width"):
        assert (tmp_path / "w" / "tiny" / folder / "done.json").exists()
    assert (tmp_path / "w" / "tiny" / "gradient" / "gradient.csv").exists()
    # the recurrent part: its runs under the same protocol, its tables and its report section
    rec = report / "recurrent"
    acc = pd.read_csv(rec / "accuracy.csv")
    assert list(acc.rule) == ["bp", "vnc", "nmnc", "readout"] and (acc.seeds == 2).all()
    assert (acc.ci_low <= acc.test_acc).all() and (acc.test_acc <= acc.ci_high).all()
    grad = pd.read_csv(rec / "gradient.csv")
    assert set(grad.time) == {"all", "step"} and set(grad.state) == {"trained", "init"}
    assert "## Recurrent networks" in (report / "report.md").read_text()
    assert (rec / "rnn_learning.png").exists() and "rnn_gradient" in (
        report / "index.html"
    ).read_text()
    runs = tmp_path / "w" / "tiny-recurrent"
    ckpt = load_checkpoint(runs / "vnc_rnn_s1" / "checkpoint.pt")
    assert ckpt.dataset == "neurogym:PerceptualDecisionMaking-v0" and ckpt.total_steps == 3
    assert ckpt.config["dataset_settings"]["seq_len"] == 50
    assert ckpt.config["rule_settings"]["match_k"] == 8  # energy-matched to NMNC's k = 8
    rows = len(df)
    t = time.time()
    # everything is done: nothing is trained, scored or analysed again
    assert run_cli(main, args) == 0
    err = capsys.readouterr().err
    assert err.count("finished earlier") == 16 + 14 and err.count("skipped pixels") == 1
    assert len(pd.read_csv(report / "results.csv")) == rows and time.time() - t < 60
    # a changed setting never reuses the old weights: one line, no work
    assert run_cli(main, [*args, "--set", "train.run.momentum=0.5"]) == 2
    assert "holds a run with other settings (momentum: 0.9 -> 0.5)" in one_error_line(capsys)


@pytest.mark.slow
def test_quick_main_job(tmp_path, data_root, monkeypatch):
    """The built-in quick experiment, end to end (about 3 minutes on 2 cores)."""
    monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
    assert (
        run_cli(
            main,
            ["--quick", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "r"), "--quiet"],
        )
        == 0
    )
    summary = pd.read_csv(tmp_path / "r" / "quick" / "summary.csv")
    assert {"bp cnn", "vnc cnn", "nmnc cnn", "pixels", "random cnn"} <= set(summary.model)
