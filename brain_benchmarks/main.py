"""The main job: ``python -m brain_benchmarks.main [--experiment NAME_OR_FILE] [--quick]``.

Runs an experiment (default: the built-in ``default``, see ``brain_benchmarks/experiments/``):
1. trains its grid of runs (one recipe; every rule and seed);
2. scores the runs and the baselines on the experiment's benchmarks;
3. runs the analyses (alignment and dimension, gradient quality, a width sweep);
4. runs the experiment's recurrent part, if it has one: a recurrent network on a sequence task
   under the same protocol, its accuracy, gradient quality against BPTT and hidden-state manifold
   (``brain_benchmarks/recurrent.py``);
5. writes the comparison report under ``<reports>/<experiment name>/``.

Stage 1 runs its cells where ``--set launcher=...`` says (``brain_benchmarks/launch.py``: this
process by default, local processes or SLURM jobs); ``cells.csv`` in the report folder holds one
row per final run with its accuracies and its committed score on every benchmark.

Every stage skips finished work, so a stopped job reruns from where it was: finished runs are
skipped and interrupted ones resume from their checkpoint; scored (weights, benchmark) pairs are not
scored again; finished analyses are kept.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from nmnc.cli import entry, out_dir, parser
from nmnc.config import to_json
from nmnc.io import atomic_write_text

from .experiment import Experiment, builtin_listing, experiment_flags
from .launch import LaunchSettings, chosen, make_launcher


@dataclass(frozen=True)
class MainConfig:
    """An experiment and where its work and its report go."""

    experiment: Experiment
    data_root: str | None = None
    work_dir: str = "runs/main"  # training runs and analyses: <work_dir>/<experiment name>/
    out: str = "reports"  # results table and report: <out>/<experiment name>/
    progress: bool = True
    # where stage 1's training cells run (brain_benchmarks/launch.py): serial, local or slurm
    launch: LaunchSettings = field(default_factory=LaunchSettings)


def stage(msg: str) -> None:
    """Announce a stage of the main job on stderr."""
    print(f"\n== {msg}", file=sys.stderr, flush=True)


def analysis(config, job) -> str:
    """Run ``job(config)`` into ``config.out`` unless an earlier run there had the same config."""
    folder = Path(config.out)
    marker = folder / "done.json"
    settings = json.loads(to_json(dataclasses.replace(config, progress=False)))
    if not marker.exists() or json.loads(marker.read_text()).get("config") != settings:
        job(config)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        atomic_write_text(marker, json.dumps({"finished": stamp, "config": settings}))
    return str(folder)


def run_experiment(cfg: MainConfig) -> Path:
    """Train, score, analyse and report one experiment; returns the report's index.html."""
    from nmnc.analysis import (
        AlignmentConfig,
        WidthSweepConfig,
        analyse_checkpoint,
        gradient_quality,
        width_sweep,
    )
    from nmnc.checkpoint import load_checkpoint

    from .protocol import Protocol
    from .report import ReportConfig, build_report
    from .score import ScoreConfig, score

    exp, t0 = cfg.experiment, time.perf_counter()
    root = Path(cfg.work_dir) / exp.name
    report_dir = Path(cfg.out) / exp.name
    launcher = make_launcher(cfg.launch, root / "launch", cfg.progress)
    protocol = Protocol(exp, cfg.work_dir, cfg.data_root, launcher)
    protocol.check_folders()  # a folder holding other settings stops the job before any work
    if exp.recurrent.recipe:
        Protocol(exp.recurrent.experiment(exp.name), cfg.work_dir, cfg.data_root).check_folders()

    t = exp.train
    picks = f"; step sizes chosen on validation: {t.select}" if t.select else ""
    stage(
        f"1/5 training recipe {t.recipe} ({', '.join(t.rules)}; seeds "
        f"{', '.join(map(str, t.seeds))}{'; grid ' + str(t.grid) if t.grid else ''}{picks})"
    )
    runs, selection = protocol.run(cfg.progress)
    if len(selection):
        atomic_write_text(report_dir / "selection.csv", selection.to_csv(index=False))
    first = {}  # rule -> its first run (first seed, first grid point): what the analyses use
    for run in runs:
        first.setdefault(load_checkpoint(run / "checkpoint.pt").rule, str(run))

    stage("2/5 scoring against primate data")
    sessions = exp.score.v4_sessions
    options = {"Cowley2023.V4-pls-raw": {"sessions": list(sessions)}} if sessions else {}
    score(
        ScoreConfig(
            models=tuple(map(str, runs)) + exp.score.baselines,
            benchmarks=exp.score.benchmarks,
            data_root=cfg.data_root,
            out=str(report_dir),
            progress=cfg.progress,
            bench_options=options,
        )
    )

    from .results import join_cells, read_results

    cells = join_cells(protocol.cells, read_results(report_dir / "results.csv"))
    atomic_write_text(report_dir / "cells.csv", cells.to_csv(index=False))

    stage("3/5 analyses")
    a, common = exp.analysis, {"data_root": cfg.data_root, "progress": cfg.progress}
    done = [
        analysis(
            AlignmentConfig(first[r], str(root / f"analysis_{r}"), a.images, **common),
            analyse_checkpoint,
        )
        for r in a.alignment_rules
    ]
    done.append(
        analysis(
            a.gradient_config(first["bp"], str(root / "gradient"), **common),
            gradient_quality,
        )
    )
    done.append(
        analysis(
            WidthSweepConfig(
                str(root / "width"),
                a.widths,
                a.width_recipe,
                a.width_run,
                images=a.images,
                **common,
            ),
            width_sweep,
        )
    )

    sections = ()
    if exp.recurrent.recipe:
        stage(f"4/5 recurrent networks: recipe {exp.recurrent.recipe}")
        from .recurrent import run_recurrent

        folder = run_recurrent(
            exp.recurrent, exp.name, cfg.work_dir, report_dir, cfg.data_root, cfg.progress
        )
        sections = (str(folder),)
    else:
        stage("4/5 recurrent networks: none in this experiment")

    stage("5/5 report")
    page = build_report(
        ReportConfig(
            str(report_dir / "results.csv"),
            tuple(map(str, runs)),
            tuple(done),
            str(report_dir),
            cfg.data_root,
            exp.title,
            notes=(exp.note,) if exp.note else (),
            sections=sections,
        )
    )
    minutes = (time.perf_counter() - t0) / 60
    print(f"\nmain job finished in {minutes:.1f} min; report: {page}", file=sys.stderr)
    return page


def main(argv=None) -> int:
    """Run the main job on an experiment and print its summary table."""
    p = parser(
        "python -m brain_benchmarks.main",
        __doc__.split("\n\n")[0],
        out="folder for results and reports: <DIR>/<experiment>/ holds results.csv, summary.csv, "
        "index.html, report.md and the figures (default reports)",
        sets="experiment setting as section.key=value, e.g. train.seeds=0,1,2, "
        "train.run.P=8 or analysis.images=200; or where stage 1 trains, e.g. launcher=local "
        "jobs=4 or launcher=slurm slurm.partition=gpu (python -m brain_benchmarks.grid --help)",
        listing="list the built-in experiments and exit",
    )
    experiment_flags(
        p,
        "the built-in 'quick' experiment: a smoke run of every stage in a few minutes",
        "folder for training runs and analyses: <DIR>/<experiment>/ (default runs/main)",
    )
    args = p.parse_args(argv)
    if args.list:
        print(builtin_listing())
        return 0
    out = out_dir(args.out or "reports", "results and reports")
    exp, launch = chosen(args)
    cfg = MainConfig(
        exp,
        args.data_root,
        out_dir(args.work, "training runs and analyses", "--work"),
        out,
        not args.quiet,
        launch,
    )
    if args.print_config:
        runs = [dataclasses.asdict(c) for c in exp.run_configs(args.work, args.data_root)]
        shown = {"main": cfg, "runs": runs}
        if exp.recurrent.recipe:
            rec = exp.recurrent.experiment(exp.name).run_configs(args.work, args.data_root)
            shown["recurrent_runs"] = [dataclasses.asdict(c) for c in rec]
        print(to_json(shown))
        return 0
    page = run_experiment(cfg)
    import pandas as pd

    summary = pd.read_csv(page.parent / "summary.csv")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    entry(main, "brain_benchmarks.main")
