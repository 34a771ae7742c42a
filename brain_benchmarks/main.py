"""The main job: ``python -m brain_benchmarks.main [--experiment NAME_OR_FILE] [--quick]``.

Runs an experiment (default: the built-in ``default``, see ``brain_benchmarks/experiments/``):
1. trains its grid of runs (one recipe; every rule and seed);
2. scores the runs and the baselines on the experiment's benchmarks;
3. runs the analyses (alignment and dimension, gradient quality, a width sweep);
4. writes the comparison report under ``<reports>/<experiment name>/``.

Every stage skips finished work, so a stopped job reruns from where it was: finished runs are
skipped and interrupted ones resume from their checkpoint; scored (weights, benchmark) pairs are not
scored again; finished analyses are kept.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nmnc.cli import entry, parser
from nmnc.config import parse_sets, to_json
from nmnc.io import atomic_write_text

from .experiment import Experiment, builtin_names, load_experiment


@dataclass(frozen=True)
class MainConfig:
    experiment: Experiment
    data_root: str | None = None
    runs_dir: str = "runs/main"  # training runs and analyses: <runs_dir>/<experiment name>/
    reports_dir: str = "reports"  # results and report: <reports_dir>/<experiment name>/
    progress: bool = True


def stage(msg: str) -> None:
    print(f"\n== {msg}", file=sys.stderr, flush=True)


def _once(folder: Path, work) -> str:
    """Run ``work()`` unless ``folder`` holds a done marker from an earlier run."""
    if not (folder / "done.json").exists():
        work()
        atomic_write_text(
            folder / "done.json", json.dumps({"finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
        )
    return str(folder)


def run_experiment(cfg: MainConfig) -> Path:
    """Train, score, analyse and report one experiment; returns the report's index.html."""
    from nmnc.analysis import (
        AlignmentConfig,
        GradientConfig,
        WidthSweepConfig,
        analyse_checkpoint,
        gradient_quality,
        width_sweep,
    )
    from nmnc.training import train_or_resume

    from .report import ReportConfig, build_report
    from .score import ScoreConfig, score

    exp, t0 = cfg.experiment, time.perf_counter()
    root = Path(cfg.runs_dir) / exp.name
    report_dir = Path(cfg.reports_dir) / exp.name
    configs = exp.run_configs(cfg.runs_dir, cfg.data_root)

    stage(
        f"1/4 training {len(configs)} runs of recipe {exp.train.recipe} "
        f"({', '.join(exp.train.rules)}; seeds {', '.join(map(str, exp.train.seeds))})"
    )
    runs = {(c.rule, c.seed): train_or_resume(c, cfg.progress).run_dir for c in configs}

    stage("2/4 scoring against primate data")
    options = (
        {"Cowley2023.V4-pls": {"sessions": list(exp.score.v4_sessions)}}
        if exp.score.v4_sessions
        else {}
    )
    models = tuple(str(p) for p in runs.values()) + exp.score.baselines
    score(
        ScoreConfig(
            models=models,
            benchmarks=exp.score.benchmarks,
            data_root=cfg.data_root,
            out=str(report_dir),
            progress=cfg.progress,
            skip_scored=True,
            bench_options=options,
        )
    )

    stage("3/4 analyses")
    a, first = exp.analysis, exp.train.seeds[0]
    analyses = [
        _once(
            root / f"analysis_{rule}",
            lambda rule=rule: analyse_checkpoint(
                AlignmentConfig(
                    str(runs[rule, first]),
                    str(root / f"analysis_{rule}"),
                    a.images,
                    cfg.data_root,
                    cfg.progress,
                )
            ),
        )
        for rule in a.alignment_rules
        if (rule, first) in runs
    ]
    analyses.append(
        _once(
            root / "gradient",
            lambda: gradient_quality(
                GradientConfig(
                    str(runs["bp", first]),
                    str(root / "gradient"),
                    cfg.data_root,
                    a.gradient_P,
                    a.gradient_k,
                    a.gradient_batch,
                    a.manifold_images,
                    progress=cfg.progress,
                )
            ),
        )
    )
    analyses.append(
        _once(
            root / "width",
            lambda: width_sweep(
                WidthSweepConfig(
                    str(root / "width"),
                    a.widths,
                    a.width_recipe,
                    a.width_set,
                    images=a.images,
                    data_root=cfg.data_root,
                    progress=cfg.progress,
                )
            ),
        )
    )

    stage("4/4 report")
    page = build_report(
        ReportConfig(
            str(report_dir / "results.csv"),
            tuple(str(p) for p in runs.values()),
            tuple(analyses),
            str(report_dir),
            cfg.data_root,
            exp.title,
        )
    )
    print(
        f"\nmain job finished in {(time.perf_counter() - t0) / 60:.1f} min; report: {page}",
        file=sys.stderr,
    )
    return page


def main(argv=None) -> int:
    """Run the main job on an experiment and print its summary table."""
    p = parser(
        "python -m brain_benchmarks.main",
        __doc__.split("\n\n")[0],
        sets=(
            "experiment setting as section.key=value, e.g. train.seeds=0,1,2 or analysis.images=200"
        ),
        listing="list the built-in experiments and exit",
    )
    p.add_argument(
        "--experiment",
        default="default",
        help=f"built-in experiment ({', '.join(builtin_names())}) or a TOML file",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="the built-in 'quick' experiment: a smoke run of every stage in a few minutes",
    )
    p.add_argument(
        "--runs",
        default="runs/main",
        metavar="DIR",
        help="folder for training runs and analyses (default runs/main)",
    )
    p.add_argument(
        "--reports",
        default="reports",
        metavar="DIR",
        help="folder for results and reports (default reports)",
    )
    args = p.parse_args(argv)
    if args.list:
        for name in builtin_names():
            print(f"{name:10s} {load_experiment(name).title}")
        return 0
    exp = load_experiment("quick" if args.quick else args.experiment, parse_sets(args.sets))
    cfg = MainConfig(exp, args.data_root, args.runs, args.reports, not args.quiet)
    if args.print_config:
        runs = [dataclasses.asdict(c) for c in exp.run_configs(args.runs, args.data_root)]
        print(to_json({"main": cfg, "runs": runs}))
        return 0
    page = run_experiment(cfg)
    import pandas as pd

    summary = pd.read_csv(page.parent / "summary.csv")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    entry(main, "brain_benchmarks.main")
