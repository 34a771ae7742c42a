"""Data-parallel check: each rule trained by ``torchrun`` on N processes and on one process with
the same global batch, and how far apart their weights end.

    python scripts/ddp_check.py [--set nproc=2 --set steps=10 --set rules=bp,vnc,nmnc] [--out DIR]
    python scripts/ddp_check.py --set lr=0.02 --set momentum=0.9 --set grad_clip=1   # larger steps

Prints, per rule: the relative difference |w_N - w_1| / |w_1| over every weight, the largest
absolute difference, both runs' last logged loss, and the world size and backend the N-process
checkpoint records. CPU runs use gloo, GPU runs NCCL (``device=auto`` picks). ``--out DIR`` keeps
the run folders and writes DIR/ddp_check.json.
"""

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from tabulate import tabulate

from nmnc.checkpoint import load_checkpoint
from nmnc.cli import entry, print_config, script_settings
from nmnc.errors import NmncError
from nmnc.io import atomic_write_text

OUT_FILE = "ddp_check.json"
NOISE = {"vnc": ["P=2"], "nmnc": ["P=2", "k=4", "refresh=3"]}


@dataclass(frozen=True)
class DdpCheck:
    """Settings (``--set KEY=VALUE``)."""

    nproc: int = 2
    rules: tuple[str, ...] = ("bp", "vnc", "nmnc", "readout")
    model: str = "cnn"
    width: float = 0.5
    steps: int = 10
    batch_size: int = 16
    train_examples: int = 256
    lr: float = 0.005
    momentum: float = 0.0
    grad_clip: float = 0.0
    device: str = "cpu"
    data_root: str | None = None  # --data-root
    out: str | None = None  # --out


def train_args(cfg: DdpCheck, rule: str, out: Path) -> list[str]:
    """The ``nmnc.train`` flags of one run."""
    sets = [f"width={cfg.width}", f"momentum={cfg.momentum}", f"grad_clip={cfg.grad_clip}"]
    sets += [f"device={cfg.device}", "eval_every=1000", "eval_examples=100", "num_workers=0"]
    sets += NOISE.get(rule, [])
    args = ["--model", cfg.model, "--rule", rule, "--steps", str(cfg.steps), "--quiet"]
    args += ["--batch-size", str(cfg.batch_size), "--train-examples", str(cfg.train_examples)]
    args += ["--lr", str(cfg.lr), "--out", str(out)]
    if cfg.data_root:
        args += ["--data-root", cfg.data_root]
    return args + [x for s in sets for x in ("--set", s)]


def launch(cfg: DdpCheck, nproc: int, args: list[str]) -> None:
    """Train with ``nproc`` processes (torchrun) or in a plain process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = [sys.executable]
    if nproc > 1:
        start += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    done = subprocess.run([*start, "-m", "nmnc.train", *args], env=env, capture_output=True)
    if done.returncode:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise NmncError(f"training on {nproc} process(es) failed: {' '.join(tail)}")


def compare(one: Path, many: Path, rule: str) -> dict:
    """How far apart the one-process and N-process runs' weights and last losses are."""
    a, b = load_checkpoint(one), load_checkpoint(many)
    wa, wb = a.model_state, b.model_state
    diff = sum(((wa[k].double() - wb[k].double()) ** 2).sum() for k in wa)
    norm = sum((wa[k].double() ** 2).sum() for k in wa)
    return {
        "rule": rule,
        "relative_difference": float((diff / norm).sqrt()),
        "max_abs_difference": max(float((wa[k] - wb[k]).abs().max()) for k in wa),
        "loss_1": a.metrics[-1]["loss"],
        "loss_N": b.metrics[-1]["loss"],
        "world_size": b.provenance.get("world_size"),
        "backend": b.provenance.get("backend"),
    }


def main(argv=None) -> int:
    """Train every rule on N processes and on one; print how far apart the weights end."""
    cfg, args = script_settings(
        DdpCheck,
        argv,
        "python scripts/ddp_check.py",
        __doc__.split("\n\n")[0],
        OUT_FILE,
        "check setting",
        sets="nproc, rules, model, width, steps, batch_size, train_examples, lr, momentum, ...",
    )
    if cfg.nproc < 2 or cfg.batch_size % cfg.nproc:
        raise NmncError(
            f"nproc must be at least 2 and divide batch_size; got nproc={cfg.nproc}, "
            f"batch_size={cfg.batch_size}"
        )
    if args.print_config:
        return print_config(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(cfg.out or tmp)
        rows = []
        for rule in cfg.rules:
            for n in (1, cfg.nproc):
                launch(cfg, n, train_args(cfg, rule, root / f"{rule}_{n}"))
            rows.append(compare(root / f"{rule}_1", root / f"{rule}_{cfg.nproc}", rule))
            print(f"{rule}: done", file=sys.stderr)
    print(f"\n{cfg.nproc} processes against 1, {cfg.steps} steps, global batch {cfg.batch_size}")
    print(tabulate(rows, headers="keys", floatfmt=("", ".2e", ".2e", ".5f", ".5f", "", "")))
    if cfg.out:
        atomic_write_text(Path(cfg.out) / OUT_FILE, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    entry(main, "ddp_check")
