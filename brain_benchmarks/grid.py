"""Train an experiment's grid: ``python -m brain_benchmarks.grid [--experiment NAME] [--dry-run]``.

Trains the ``[train]`` section of an experiment (rules x grid points x seeds on one recipe) under
the fair protocol (``brain_benchmarks/protocol.py``: step sizes chosen on the validation split,
then the final runs over seeds), each stage's cells in parallel with a launcher
(``brain_benchmarks/launch.py``): ``--set launcher=serial`` (default, this process),
``launcher=local`` (local processes, ``jobs`` at a time) or ``launcher=slurm`` (SLURM jobs through
submitit). A cell whose job dies is submitted again and resumes from its checkpoint. The final
runs' metrics go to ``<work>/<experiment>/cells.csv``. ``--dry-run`` lists every cell, its
``python -m nmnc.train`` command and what is decided at run time, and trains nothing.
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nmnc.cli import entry, out_dir, parser
from nmnc.config import to_json

from .experiment import Experiment, builtin_listing, experiment_flags
from .launch import LaunchSettings, chosen, describe, make_launcher

SETS_HELP = (
    "experiment setting as section.key=value (train.seeds=0,1, train.run.steps=20) or launcher "
    "setting: launcher=serial|local|slurm, jobs=N (cells at once), retries=N, threads=N, "
    "folder=DIR, slurm.partition=NAME, slurm.time_min=N, slurm.gpus_per_node=N, "
    "slurm.cpus_per_task=N, slurm.mem_gb=N, slurm.account, slurm.qos, slurm.constraint, "
    "slurm.setup=LINE,LINE, slurm.extra.KEY=VALUE (any sbatch option)"
)


@dataclass(frozen=True)
class GridConfig:
    """An experiment's training grid and where its cells run."""

    experiment: Experiment
    launch: LaunchSettings = field(default_factory=LaunchSettings)
    data_root: str | None = None
    work_dir: str = "runs/main"  # runs, cells.csv and job logs: <work_dir>/<experiment name>/
    progress: bool = True


def protocol(cfg: GridConfig):
    """The experiment's protocol, running its cells with the configured launcher."""
    from .protocol import Protocol

    folder = Path(cfg.work_dir) / cfg.experiment.name / "launch"
    launcher = make_launcher(cfg.launch, folder, cfg.progress)
    return Protocol(cfg.experiment, cfg.work_dir, cfg.data_root, launcher)


def run_grid(cfg: GridConfig) -> pd.DataFrame:
    """Train the grid (finished cells are skipped, interrupted ones resume); returns the final
    runs' table, also written to ``<work_dir>/<experiment>/cells.csv``."""
    p = protocol(cfg)
    p.check_folders()  # a folder holding other settings stops the grid before any work
    p.run(cfg.progress)
    return p.cells


def train_command(recipe: str, cell: dict, data_root: str | None) -> str:
    """The ``python -m nmnc.train`` command that trains one cell of :meth:`Protocol.plan`."""
    args = ["python", "-m", "nmnc.train", "--recipe", recipe, "--rule", cell["rule"]]
    args += ["--seed", str(cell["seed"]), "--out", cell["out"]]
    args += ["--data-root", data_root] if data_root else []
    sets = [f"{k}={v}" for k, v in cell["set"].items()]
    return shlex.join(args + (["--set", *sets] if sets else []))


def dry_run(cfg: GridConfig) -> str:
    """Every cell the grid would train, stage by stage, with its command; trains nothing."""
    exp, p = cfg.experiment, protocol(cfg)
    t = exp.train
    cells = p.plan()
    lines = [
        f"experiment {exp.name}: recipe {t.recipe}; rules {', '.join(t.rules)}; seeds "
        f"{', '.join(map(str, t.seeds))}" + (f"; grid {dict(t.grid)}" if t.grid else ""),
        f"launcher {describe(cfg.launch)}",
        f"{len(cells)} cells; nothing is trained now; CHOSEN is a step size chosen at run time",
    ]
    stages = list(dict.fromkeys(c["stage"] for c in cells))
    after = {"readout_lr": "", "lr": "", "final": ""}
    if "readout_lr" in stages:
        after["lr"] = after["final"] = " (after the read-out step is chosen)"
    if "lr" in stages:
        after["final"] = " (after every step size is chosen)"
    titles = {
        "readout_lr": "read-out step (readout_lr) on validation",
        "lr": "hidden step (lr) per rule on validation",
        "final": "final runs",
    }
    for n, stage in enumerate(stages, 1):
        batch = [c for c in cells if c["stage"] == stage]
        lines.append(
            f"\nstage {n}/{len(stages)}: {titles[stage]}, {len(batch)} cells in one batch"
            f"{after[stage]}"
        )
        for c in batch:
            lines.append(f"  {c['rule']} seed {c['seed']} grid {c['grid']} -> {c['out']}")
            lines.append(f"    {train_command(t.recipe, c, cfg.data_root)}")
            if c["decided"]:
                lines.append(f"    decided at run time: {c['decided']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Train an experiment's grid with a launcher, or list its cells (``--dry-run``)."""
    p = parser(
        "python -m brain_benchmarks.grid",
        __doc__.split("\n\n")[0],
        sets=SETS_HELP,
        listing="list the built-in experiments and exit",
    )
    experiment_flags(
        p,
        "the built-in 'quick' experiment",
        "folder for the runs: <DIR>/<experiment>/ holds them, cells.csv (the final runs' table), "
        "selection.csv and launch/ (job logs) (default runs/main, as the main job)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list every cell, its python -m nmnc.train command and what is decided at run "
        "time, then exit without training",
    )
    args = p.parse_args(argv)
    if args.list:
        print(builtin_listing())
        return 0
    exp, launch = chosen(args)
    work = out_dir(args.work, "training runs and cells.csv", "--work")
    cfg = GridConfig(exp, launch, args.data_root, work, not args.quiet)
    if args.print_config:
        print(to_json({"grid": cfg, "cells": protocol(cfg).plan()}))
        return 0
    if args.dry_run:
        print(dry_run(cfg))
        return 0
    t0 = time.perf_counter()
    table = run_grid(cfg)
    shown = table.drop(columns=["run", "weights_hash"])
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    where = Path(work) / exp.name / "cells.csv"
    minutes = (time.perf_counter() - t0) / 60
    print(f"grid finished in {minutes:.1f} min; cells table: {where}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    entry(main, "brain_benchmarks.grid")
