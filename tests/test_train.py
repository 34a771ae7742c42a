import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nmnc.checkpoint import Checkpoint, load_checkpoint
from nmnc.errors import CheckpointError, run_cli
from nmnc.train import main
from nmnc.training.trainer import resume

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "--train-examples",
    "640",
    "--batch-size",
    "32",
    "--steps",
    "40",
    "--quiet",
    "--set",
    "ckpt_every=5",
    "eval_every=40",
    "eval_examples=200",
]


def cli(*argv):
    return run_cli(main, list(argv), prog="nmnc.train")


def test_bp_cnn_learns_cifar10(tmp_path, data_root):
    """A few hundred BP steps on a few thousand real images: far above the 10% chance level."""
    out = tmp_path / "bp"
    assert (
        cli(
            "--model",
            "cnn",
            "--rule",
            "bp",
            "--train-examples",
            "4000",
            "--batch-size",
            "64",
            "--steps",
            "300",
            "--lr",
            "0.05",
            "--seed",
            "0",
            "--out",
            str(out),
            "--quiet",
            "--set",
            "eval_every=300",
            "eval_examples=2000",
        )
        == 0
    )
    ckpt = load_checkpoint(out / "checkpoint.pt")
    acc = ckpt.metrics[-1]["test_acc"]
    assert acc > 0.35, acc
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 300 and rows[-1]["examples"] == 300 * 64 and rows[-1]["test_acc"] == acc


def test_checkpoint_round_trip(tmp_path, data_root):
    out = tmp_path / "run"
    assert cli("--out", str(out), *SMALL, "--set", "width=0.5") == 0
    raw = torch.load(out / "checkpoint.pt", weights_only=True)  # plain tensors and types only
    assert raw["model"] == {
        "name": "cnn",
        "settings": {"width": 0.5, "num_classes": 10, "norm": "none", "input_size": 32},
    }
    assert (
        raw["rule"]["name"] == "bp" and raw["step"] == 40 and raw["data"]["train_examples"] == 640
    )
    assert raw["data"]["mean"] == pytest.approx([0.4914, 0.4822, 0.4465])
    assert (
        set(raw["provenance"]) >= {"git_sha", "git_dirty", "packages"}
        and "torch" in raw["provenance"]["packages"]
    )
    model = load_checkpoint(out / "checkpoint.pt").build_model()
    x = torch.randn(4, 3, 32, 32)
    ref = Checkpoint(raw).build_model()
    assert torch.equal(model(x), ref(x))
    assert torch.equal(model.conv1[0].weight, raw["model_state"]["conv1.0.weight"])


def test_resume_after_kill_matches_uninterrupted(tmp_path, data_root):
    """Kill a training process with SIGKILL part-way, resume it, compare with one uninterrupted
    run."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert cli("--out", str(whole), *SMALL) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nmnc.train", "--out", str(killed), *SMALL],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (killed / "checkpoint.pt").exists() and load_checkpoint(killed).step >= 10:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    part = load_checkpoint(killed).step
    assert 5 <= part < 40, f"expected to kill part-way, checkpoint at step {part}"
    resume(killed, progress=False)
    a, b = load_checkpoint(whole), load_checkpoint(killed)
    assert b.step == 40
    for k in a.model_state:
        assert torch.equal(a.model_state[k], b.model_state[k]), k
    logged = [
        json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()
    ]
    assert logged == list(range(1, 41))  # no duplicated or missing rows after the crash


def test_resume_from_cli_in_process(tmp_path, data_root):
    from nmnc.training.trainer import Run, config_from_checkpoint

    out = tmp_path / "r"
    assert cli("--out", str(out), *SMALL[:-4], "--set", "ckpt_every=5") == 0  # 40 steps
    ckpt = load_checkpoint(out)
    run = Run(config_from_checkpoint(ckpt, out=str(tmp_path / "r2"), steps=20), progress=False)
    run.train(stop_after=7)
    run.save()  # as at a checkpoint
    assert cli("--resume", str(tmp_path / "r2"), "--quiet") == 0
    assert load_checkpoint(tmp_path / "r2").step == 20


@pytest.mark.parametrize(
    "argv,needle",
    [
        (
            ["--model", "cnnn"],
            "unknown model 'cnnn' (did you mean 'cnn'?); "
            "choose from: alexnet, cnn, gru, resnet, resnet18, rnn",
        ),
        (["--rule", "bq"], "unknown rule 'bq' (did you mean 'bp'?)"),
        (["--dataset", "cifar100"], "unknown dataset 'cifar100' (did you mean 'cifar10'?)"),
        (["--set", "widht=2"], "unknown --set key 'widht' (did you mean 'width'?)"),
        (["--set", "width=big"], "width='big' is not a valid float"),
        (["--set", "optimizer=sgdd"], "unknown optimizer 'sgdd' (did you mean 'sgd'?)"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, needle, tmp_path, capsys):
    assert cli(*argv, "--out", str(tmp_path / "x"), "--quiet") == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_input_exit_code_from_the_shell(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "nmnc.train", "--model", "resnt", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 2 and "did you mean 'resnet'" in r.stderr and "Traceback" not in r.stderr


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, data_root, capsys):
    out = tmp_path / "nan"
    code = cli(
        "--out",
        str(out),
        "--train-examples",
        "640",
        "--batch-size",
        "32",
        "--steps",
        "40",
        "--lr",
        "1e6",
        "--quiet",
        "--set",
        "ckpt_every=1",
        "momentum=0",
    )
    err = capsys.readouterr().err
    assert (
        code == 1
        and "loss became" in err
        and "last good checkpoint" in err
        and "Traceback" not in err
    )
    ckpt = load_checkpoint(out)
    assert ckpt.step < 40
    assert all(torch.isfinite(v).all() for v in ckpt.model_state.values())


def test_truncated_and_foreign_checkpoints(tmp_path, data_root):
    out = tmp_path / "run"
    assert cli("--out", str(out), *SMALL[:-4], "--steps", "2") == 0
    data = (out / "checkpoint.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not written by nmnc"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing")
    assert cli("--resume", str(tmp_path / "nothing")) == 2
    assert cli("--out", str(out), "--quiet") == 2  # an existing run is not overwritten


def test_validation_split_is_held_out_and_shared_by_every_run(tmp_path, data_root):
    """val_examples carves one class-balanced validation split out of the training data, the same
    for every seed; the training subset never overlaps it; evaluations report val_acc."""
    from nmnc.config import TrainConfig, build_config
    from nmnc.training import Run

    def run(seed, **sets):
        sets = {
            "width": 0.25,
            "steps": 2,
            "batch_size": 32,
            "eval_every": 2,
            "eval_examples": 100,
            **sets,
        }
        return Run(
            build_config(TrainConfig(out=str(tmp_path / f"s{seed}"), seed=seed), sets),
            progress=False,
        )

    a, b = (
        run(0, val_examples=500, train_examples=1000),
        run(1, val_examples=500, train_examples=1000),
    )
    assert torch.equal(a.val_idx, b.val_idx) and len(a.val_idx) == 500
    assert torch.bincount(a.data.train.labels[a.val_idx]).tolist() == [50] * 10
    for r in (a, b):
        assert len(r.train_idx) == 1000 and not set(r.train_idx.tolist()) & set(r.val_idx.tolist())
    assert not torch.equal(a.train_idx, b.train_idx)
    result = a.train()
    assert result.val_acc is not None and "val_acc" in a.metrics[-1] and "test_acc" in a.metrics[-1]
    plain = run(2, train_examples=1000)  # without a validation split nothing changes
    assert len(plain.val_idx) == 0 and "val_acc" not in plain.evaluate()
