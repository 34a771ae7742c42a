"""Data parallelism (issue 15): ``torchrun`` on CPU with gloo reaches the weights one process
reaches with the same global batch, for BP, VNC and NMNC; a killed 2-process run resumes, on the
same or another number of processes, to the weights of a run that was never killed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nmnc.checkpoint import load_checkpoint
from nmnc.engine.noise import ExampleNoise, normal
from nmnc.errors import run_cli
from nmnc.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
SMALL = ["--model", "cnn", "--train-examples", "256", "--batch-size", "16", "--quiet"]
SMALL += [
    "--lr",
    "0.005",
    "--set",
    "momentum=0",
    "--set",
    "width=0.5",
    "--set",
    "eval_every=5",
    "--set",
    "device=cpu",
]
SMALL += ["--set", "eval_examples=100", "--set", "num_workers=0"]
RULES = {"bp": [], "vnc": ["--set", "P=2"], "nmnc": ["--set", "P=2", "--set", "k=4"]}
RULES["nmnc"] += ["--set", "refresh=3"]


def torchrun(n: int, args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [*TORCHRUN, "--nproc-per-node", str(n), "-m", "nmnc.train", *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, **kw)


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out


def kill_all(proc: subprocess.Popen) -> None:
    """SIGKILL torchrun's workers (each in a session of its own) and torchrun itself at once."""
    found = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
    for pid in [*map(int, found.stdout.split()), proc.pid]:
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    for pid in map(int, found.stdout.split()):  # until the workers are gone
        while Path(f"/proc/{pid}").exists() and "Z" not in stat(pid):
            time.sleep(0.05)


def stat(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


def relative_difference(a: dict, b: dict) -> float:
    num = sum(((a[k].double() - b[k].double()) ** 2).sum() for k in a)
    return float((num / sum((a[k].double() ** 2).sum() for k in a)).sqrt())


def test_example_noise_does_not_depend_on_how_the_batch_is_split():
    whole = ExampleNoise(3, 7, 0, 8)
    halves = [ExampleNoise(3, 7, 0, 4), ExampleNoise(3, 7, 4, 4)]
    for shape in ((2, 8, 5), (2, 8, 3, 2)):  # two layers: each example's stream continues
        a = normal(whole, shape, "cpu")
        b = torch.cat([normal(h, (shape[0], 4, *shape[2:]), "cpu") for h in halves], dim=1)
        assert torch.equal(a, b)
    rows = normal(ExampleNoise(3, 7, 0, 2), (2, 6, 4), "cpu")  # recurrent: 3 steps per example
    assert torch.equal(rows[:, 3:], normal(ExampleNoise(3, 7, 1, 1), (2, 3, 4), "cpu"))
    assert not torch.equal(normal(ExampleNoise(3, 8, 0, 1), (1, 1, 4), "cpu"), rows[:1, :1])


@pytest.mark.parametrize("rule", sorted(RULES))
def test_two_processes_reach_the_weights_of_one(tmp_path, data_root, rule):
    args = [*SMALL, "--steps", "10", "--rule", rule, *RULES[rule]]
    two = torchrun(2, [*args, "--out", str(tmp_path / "two")], stdout=subprocess.PIPE, text=True)
    assert run_cli(train_main, [*args, "--out", str(tmp_path / "one")]) == 0
    summary = json.loads(finish(two).strip().splitlines()[-1])  # rank 0 alone reports
    a, b = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    assert relative_difference(a.model_state, b.model_state) < 1e-5
    assert b.provenance["world_size"] == 2 and b.provenance["backend"] == "gloo"
    assert a.provenance["world_size"] == 1 and a.provenance["backend"] is None
    assert b.counters["examples"] == a.counters["examples"] == 160 == summary["examples"]
    assert b.counters["perturbations"] == a.counters["perturbations"]
    assert b.test_acc == a.test_acc
    rows = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 10  # one log, written by rank 0
    if rule == "nmnc":  # every process held the manifold one process holds
        for name, m in a.rule_state["manifolds"].items():
            U, V = m["U"], b.rule_state["manifolds"][name]["U"]
            assert (torch.linalg.svdvals(U.T @ V) ** 2).mean() > 1 - 1e-4


def test_a_killed_two_process_run_resumes_on_one_then_two(tmp_path, data_root):
    args = [*SMALL, "--steps", "16", "--rule", "nmnc", *RULES["nmnc"], "--set", "ckpt_every=2"]
    args += ["--set", "schedule=constant"]  # --steps on resume would reshape a cosine schedule
    run = tmp_path / "run"
    proc = torchrun(
        2,
        [*args, "--out", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        ckpt = run / "checkpoint.pt"
        if ckpt.exists() and load_checkpoint(ckpt).step >= 4:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    kill_all(proc)
    killed_at = load_checkpoint(run).step
    assert 4 <= killed_at < 10
    # resume on one process to step 10, then on two to the end
    assert run_cli(train_main, ["--resume", str(run), "--steps", "10", "--quiet"]) == 0
    assert load_checkpoint(run).step == 10
    again = ["--resume", str(run), "--steps", "16", "--quiet"]
    finish(torchrun(2, again, stdout=subprocess.PIPE, text=True))
    whole = tmp_path / "whole"
    assert run_cli(train_main, [*args, "--out", str(whole)]) == 0
    a, b = load_checkpoint(whole), load_checkpoint(run)
    assert b.step == 16 and b.provenance["world_size"] == 2
    assert relative_difference(a.model_state, b.model_state) < 1e-5
    steps = [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 17))  # the rows after the killed run's checkpoint were redone


def test_a_global_batch_that_does_not_split_is_refused(tmp_path, data_root):
    out = finish_failed(
        torchrun(
            2,
            [*SMALL, "--steps", "2", "--batch-size", "15", "--out", str(tmp_path / "r")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    )
    assert "--batch-size 15 (the global batch) does not split evenly over 2 processes" in out


def finish_failed(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    return out
