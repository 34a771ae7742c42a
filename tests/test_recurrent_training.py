"""Recurrent models train with every rule from the documented command, resume exactly, and are
kept away from the image-only commands."""

import json
import math

import pytest
import torch

from nmnc.checkpoint import load_checkpoint
from nmnc.errors import run_cli
from nmnc.train import main as train_main

PDM = "neurogym:PerceptualDecisionMaking-v0"
SMALL = ["--set", "data.train_sequences=256", "--set", "data.test_sequences=64", "--quiet"]


def train(out, *args) -> dict:
    argv = ["--model", "rnn", "--dataset", PDM, "--out", str(out), "--batch-size", "16"]
    assert run_cli(train_main, [*argv, *SMALL, "--set", "width=0.25", *args]) == 0
    return load_checkpoint(out / "checkpoint.pt")


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NMNC_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.mark.parametrize("rule", ["bp", "vnc", "nmnc", "readout"])
def test_every_rule_trains_the_rnn_on_a_neurogym_task(rule, tmp_path):
    extra = ["--set", "P=2"] if rule in ("vnc", "nmnc") else []
    extra += ["--set", "k=4"] if rule == "nmnc" else []
    ckpt = train(tmp_path / rule, "--rule", rule, "--steps", "4", *extra)
    rows = [
        json.loads(line) for line in (tmp_path / rule / "metrics.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 4 and all(math.isfinite(r["loss"]) and 0 <= r["acc"] <= 1 for r in rows)
    assert ckpt.dataset == PDM and ckpt.kind == "sequence" and ckpt.model_settings["inputs"] == 3
    per_step = 2 * 16 if rule in ("vnc", "nmnc") else 0  # P draws per sequence
    assert rows[-1]["perturbations"] == 4 * per_step
    if per_step:  # time=all: two rollouts (antithetic) per draw
        assert rows[-1]["forward_passes"] == 2 * 2 * 16
    init = ckpt.untrained_model().state_dict()
    moved = ckpt.build_model().state_dict()
    hidden_moved = not torch.equal(init["rnn.recurrent.weight"], moved["rnn.recurrent.weight"])
    assert hidden_moved == (rule != "readout")  # the control leaves the hidden layer alone
    assert not torch.equal(init["readout.weight"], moved["readout.weight"])


def test_bptt_learns_the_task(tmp_path):
    ckpt = train(tmp_path / "bp", "--steps", "150", "--set", "eval_every=150", "--lr", "0.1")
    assert ckpt.test_acc > 0.6  # chance: two choices


def test_resume_matches_uninterrupted(tmp_path):
    args = ["--rule", "nmnc", "--set", "P=2", "--set", "k=4", "--set", "refresh=2"]
    args += ["--set", "schedule=constant"]  # the same step sizes whatever the run length
    whole = train(tmp_path / "whole", *args, "--steps", "6")
    half = train(tmp_path / "half", *args, "--steps", "3")
    assert half.step == 3
    out = tmp_path / "half"
    assert run_cli(train_main, ["--resume", str(out), "--steps", "6", "--quiet"]) == 0
    resumed = load_checkpoint(out / "checkpoint.pt")
    assert resumed.step == 6 and resumed.weights_hash == whole.weights_hash


def test_one_step_at_a_time_trains(tmp_path):
    args = ["--rule", "vnc", "--set", "P=2", "--set", "time=step", "--set", "data.seq_len=25"]
    ckpt = train(tmp_path / "step", *args, "--steps", "2")
    rows = [
        json.loads(line) for line in (tmp_path / "step" / "metrics.jsonl").read_text().splitlines()
    ]
    assert rows[-1]["forward_passes"] == pytest.approx(2 * 2 * 16 * (25 + 1) / 2)
    assert rows[-1]["perturbations"] == 2 * 2 * 16 * 25  # each step perturbed on its own
    assert ckpt.rule_settings["time"] == "step"


@pytest.mark.data
def test_gru_trains_on_sequential_cifar(tmp_path, data_root):
    out = tmp_path / "gru"
    argv = ["--model", "gru", "--dataset", "scifar10", "--out", str(out), "--steps", "3"]
    argv += ["--train-examples", "96", "--batch-size", "32", "--set", "width=0.25", "--quiet"]
    argv += ["--set", "eval_examples=100", "--data-root", str(data_root)]
    assert run_cli(train_main, argv) == 0
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt.model_settings["inputs"] == 96 and ckpt.classes[0] == "airplane"
    assert 0 <= ckpt.test_acc <= 1 and ckpt.total_steps == 3


def test_recurrent_command_needs_a_recurrent_part(tmp_path, capsys):
    from brain_benchmarks.recurrent import main

    path = tmp_path / "none.toml"
    path.write_text('[train]\nrecipe = "cnn-quick"\n')
    assert run_cli(main, ["--experiment", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "has no recurrent part" in capsys.readouterr().err
    path.write_text('[recurrent]\nrecipe = "cnn-quick"\n')
    assert run_cli(main, ["--experiment", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "not a recurrent model" in capsys.readouterr().err
