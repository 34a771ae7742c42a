"""Experiment grids on a cluster (issue 15): a 2 rules x 2 seeds grid run through submitit's local
executor gives the same cells table as its cells one by one in this process; a cell whose job is
killed part-way is submitted again and resumes from its checkpoint; a user's error in a cell is
one line and not retried; --dry-run lists the cells and trains nothing; launcher settings are
checked in one line."""

import json
import os
import shlex
import shutil
import signal
from pathlib import Path

import pandas as pd
import pytest

from brain_benchmarks.grid import main
from brain_benchmarks.launch import Cell, LaunchSettings, Submitit
from brain_benchmarks.protocol import Protocol
from nmnc.errors import NmncError, run_cli

TINY = """
name = "tiny"

[train]
recipe = "cnn-quick"
rules = ["bp", "nmnc"]
seeds = [0, 1]

[train.run]
train_examples = 128
val_examples = 32
steps = 4
batch_size = 16
width = 0.25
eval_every = 4
eval_examples = 100
ckpt_every = 2

[analysis]
alignment_rules = ["bp"]
"""
# what must agree between two ways of running the same cells (not the folders or the time)
SAME = ["rule", "seed", "grid", "readout_lr", "lr", "steps", "total_steps", "examples"]
SAME += ["perturbations", "test_acc", "val_acc", "weights_hash"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("exp") / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def serial(tiny, tmp_path_factory, data_root) -> pd.DataFrame:
    """The grid's cells one by one in this process (one torch thread, as each local job)."""
    work = tmp_path_factory.mktemp("serial")
    args = ["--experiment", str(tiny), "--work", str(work), "--quiet", "--set", "threads=1"]
    assert run_cli(main, args) == 0
    return pd.read_csv(work / "tiny" / "cells.csv")


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_a_grid_through_submitits_local_executor_matches_its_cells_one_by_one(
    serial, tiny, tmp_path, capsys
):
    args = ["--experiment", str(tiny), "--work", str(tmp_path), "--set", "launcher=local"]
    assert run_cli(main, [*args, "--set", "jobs=2", "threads=1"]) == 0
    local = pd.read_csv(tmp_path / "tiny" / "cells.csv")
    assert len(local) == 4 and set(zip(local.rule, local.seed)) == {
        (r, s) for r in ("bp", "nmnc") for s in (0, 1)
    }
    pd.testing.assert_frame_equal(local[SAME], serial[SAME])
    assert (local.steps == 4).all() and (local[local.rule == "nmnc"].perturbations > 0).all()
    assert "cells: 4/4 done" in capsys.readouterr().err
    jobs = [d for d in (tmp_path / "tiny" / "launch").iterdir() if d.name.isdigit()]
    assert len(jobs) == 4  # one job per cell, its log beside it


class DieOnce:
    """A cell whose first attempt trains 3 of its 4 steps (checkpoint at step 2) and is then
    killed with SIGKILL, as a node failure or the out-of-memory killer would."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __call__(self, cfg, gpu=None):
        import torch

        from nmnc.training import Run

        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            torch.set_num_threads(1)
            Run(cfg, progress=False).train(stop_after=3)
            os.kill(os.getpid(), signal.SIGKILL)
        return Cell(threads=1)(cfg, gpu)


def tiny_protocol(tiny, work) -> Protocol:
    from brain_benchmarks.experiment import load_experiment

    return Protocol(load_experiment(str(tiny)), work)


def test_a_cell_killed_part_way_is_submitted_again_and_resumes(
    serial, tiny, tmp_path, monkeypatch, capsys
):
    here = str(Path(__file__).parent)  # the jobs unpickle DieOnce from this module
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.getenv("PYTHONPATH")])))
    cfg = tiny_protocol(tiny, tmp_path).finals({})[-1].config  # nmnc, seed 1
    settings = LaunchSettings(launcher="local", retries=1)
    launcher = Submitit(settings, tmp_path / "launch", False, DieOnce(tmp_path / "died"))
    (result,) = launcher.run_cells([cfg])
    err = capsys.readouterr().err
    assert "its job ended without a result" in err and "(attempt 2 of 2)" in err
    logs = [p.read_text() for p in (tmp_path / "launch").rglob("*_log.err")]
    assert len(logs) == 2 and sum(f"{cfg.out}: resuming at step 2" in log for log in logs) == 1
    run = serial[(serial.rule == "nmnc") & (serial.seed == 1)].iloc[0]
    from nmnc.checkpoint import load_checkpoint

    ckpt = load_checkpoint(result.checkpoint)
    assert (result.step, ckpt.weights_hash, result.test_acc) == (4, run.weights_hash, run.test_acc)
    steps = [json.loads(line)["step"] for line in open(Path(cfg.out) / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4]  # the killed attempt's step 3 was trained again, once


def test_a_users_error_in_a_cell_is_one_line_and_not_retried(serial, tiny, tmp_path):
    """A run folder that holds a run with other settings: the cell's NmncError comes back as
    itself, with no second attempt."""
    cfg = tiny_protocol(tiny, tmp_path).finals({})[0].config  # bp, seed 0
    shutil.copytree(Path(serial.run.iloc[0]), cfg.out)
    import dataclasses

    cfg = dataclasses.replace(cfg, momentum=0.5)
    launcher = Submitit(LaunchSettings(launcher="local"), tmp_path / "launch", False)
    with pytest.raises(NmncError, match=r"holds a run with other settings \(momentum: 0.9"):
        launcher.run_cells([cfg])
    assert len([d for d in (tmp_path / "launch").iterdir() if d.name.isdigit()]) == 1


def test_dry_run_lists_every_cell_and_its_command_without_training(tiny, tmp_path, capsys):
    work = tmp_path / "w"
    assert run_cli(main, ["--experiment", str(tiny), "--work", str(work), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 cells" in out and "stage 1/1: final runs, 4 cells in one batch" in out
    assert not work.exists()
    # each command trains exactly the protocol's run
    from nmnc.train import config_from_args, parser

    commands = [line.strip() for line in out.splitlines() if "python -m nmnc.train" in line]
    finals = tiny_protocol(tiny, work).finals({})
    assert len(commands) == len(finals) == 4
    for command, final in zip(commands, finals):
        assert config_from_args(parser().parse_args(shlex.split(command)[3:])) == final.config
    # with a selection stage: its cells first, and what is chosen at run time
    sets = ["--set", "train.select.lr=0.02,0.1", "launcher=slurm", "slurm.partition=gpu"]
    assert run_cli(main, ["--experiment", str(tiny), "--work", str(work), "--dry-run", *sets]) == 0
    out = capsys.readouterr().out
    assert "stage 1/2: hidden step (lr) per rule on validation, 4 cells" in out
    assert "stage 2/2: final runs, 4 cells in one batch (after every step size" in out
    assert "lr: the best validation accuracy of nmnc at seed 0 among [0.02, 0.1]" in out
    assert "SLURM jobs (partition gpu" in out and "lr=CHOSEN" in out and not work.exists()


@pytest.mark.parametrize(
    "pair,needle",
    [
        ("launcher=slrum", "unknown launcher 'slrum' (did you mean 'slurm'?)"),
        ("jobz=2", "unknown --set key 'jobz' (did you mean 'jobs'?)"),
        ("jobs=many", "setting jobs='many' is not a valid int"),
        ("retries=-1", "retries must be 0 or more, got -1"),
        ("slurm.partiton=gpu", "unknown slurm setting 'partiton' (did you mean 'partition'?)"),
        ("slurm=gpu", "give SLURM settings one at a time as slurm.KEY=VALUE"),
        ("launcher=slurm", "launcher=slurm needs SLURM's sbatch on PATH"),
    ],
)
def test_a_bad_launcher_setting_is_one_line_before_any_work(
    pair, needle, tiny, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no sbatch here, whatever the machine has
    args = ["--experiment", str(tiny), "--work", str(tmp_path / "w"), "--set", pair]
    assert run_cli(main, args) == 2
    assert needle in one_error_line(capsys)
    assert not (tmp_path / "w").exists()


def test_the_main_job_takes_launcher_settings_for_its_training(capsys):
    from brain_benchmarks.main import main as main_job

    sets = ["launcher=local", "jobs=3", "slurm.extra.reservation=r1", "train.seeds=0,1"]
    assert run_cli(main_job, ["--print-config", "--set", *sets]) == 0
    cfg = json.loads(capsys.readouterr().out)["main"]
    assert cfg["launch"]["launcher"] == "local" and cfg["launch"]["jobs"] == 3
    assert cfg["launch"]["slurm"]["extra"] == {"reservation": "r1"}
    assert cfg["experiment"]["train"]["seeds"] == [0, 1]


def test_scores_join_the_cells_table_on_the_weights_hash():
    from brain_benchmarks.results import join_cells

    cells = pd.DataFrame({"rule": ["bp", "nmnc"], "weights_hash": ["aa", "bb"]})
    results = pd.DataFrame(
        {
            "checkpoint_hash": ["aa", "aa", "bb", "cc"],
            "benchmark": ["B.IT-rsa"] * 4,
            "committed": [True, False, True, True],
            "score": [0.5, 0.9, 0.25, 0.1],
        }
    )
    joined = join_cells(cells, results)
    assert list(joined["B.IT-rsa"]) == [0.5, 0.25] and len(joined) == 2


def test_local_jobs_share_the_visible_gpus_one_each(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    launcher = Submitit(LaunchSettings(launcher="local"), tmp_path, False)
    assert launcher.gpus == ["5", "7"] and launcher.jobs == 2  # one job per GPU by default
    assert launcher._free_gpu(["5"]) == "7" and launcher._free_gpu(["5", "7", "7"]) == "5"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    launcher = Submitit(LaunchSettings(launcher="local", jobs=2), tmp_path, False)
    assert launcher.gpus == [] and launcher._free_gpu([]) is None
    assert launcher.cell.threads == max(1, len(os.sched_getaffinity(0)) // 2)
