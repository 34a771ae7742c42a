"""The main job on its built-in default: ``python -m brain_benchmarks.main [--quick]``.

1. trains the small CNN on CIFAR-10 with BP, VNC and NMNC on the same budget;
2. scores the three checkpoints and the baselines (pixels, random cnn) on every offline benchmark;
3. runs the analyses (alignment and dimension, gradient quality, a width sweep);
4. writes the comparison report under ``reports/<budget>/``.

Every stage skips finished work, so a stopped job reruns from where it was: finished runs are
skipped and interrupted ones resume from their checkpoint; scored (weights, benchmark) pairs are not
scored again; finished analyses are kept.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from nmnc.config import TrainConfig, build_config
from nmnc.errors import NmncError, run_cli
from nmnc.rules import RULES
from nmnc.io import atomic_write_text
from nmnc.training.trainer import train_or_resume

from .models import resolve_model
from .report import build as build_report
from .score import OFFLINE, score_model

# Budgets sized for a 2-core CPU. Units: CIFAR-10 training images; P = perturbations per example and layer.
BUDGETS = {
    "default": {"train": {"train_examples": 10_000, "epochs": 1, "batch_size": 64}, "eval_every": 20, "images": 500,
                "sessions": None, "grad_P": "1,4,16", "widths": "0.25,0.5,1", "width_steps": 150},
    "quick": {"train": {"train_examples": 1_000, "epochs": 1, "batch_size": 64}, "eval_every": 5, "images": 200,
              "sessions": ["210325"], "grad_P": "1,4", "widths": "0.25,0.5", "width_steps": 20},
}
SETTINGS = {"grad_clip": "1.0", "eval_examples": "1000"}  # the same for every rule
NOISE = {"P": "4"}  # noise rules only


def stage(msg: str) -> None:
    print(f"\n== {msg}", file=sys.stderr, flush=True)


def scored(results: Path) -> set:
    if not results.exists():
        return set()
    df = pd.read_csv(results)
    return set(zip(df.checkpoint_hash.astype(str), df.benchmark))


def done(folder: Path) -> bool:
    return (folder / "done.json").exists()


def mark_done(folder: Path, info: dict) -> None:
    atomic_write_text(folder / "done.json", json.dumps(info))


def run_pipeline(budget: str, data_root=None, runs_dir="runs/main", reports_dir="reports", rules=("bp", "vnc", "nmnc"),
                 progress: bool = True) -> Path:
    b = BUDGETS[budget]
    t0 = time.perf_counter()
    root = Path(runs_dir) / budget
    report_dir = Path(reports_dir) / budget
    results = report_dir / "results.csv"
    report_dir.mkdir(parents=True, exist_ok=True)

    stage(f"1/4 training cnn with {', '.join(rules)} ({b['train']['train_examples']} CIFAR-10 images)")
    runs = {}
    for rule in rules:
        RULES.get(rule)
        sets = {**SETTINGS, "eval_every": str(b["eval_every"]), **(NOISE if rule != "bp" else {})}
        cfg = build_config(TrainConfig(model="cnn", rule=rule, data_root=data_root, out=str(root / f"{rule}_cnn"), **b["train"]), sets)
        runs[rule] = train_or_resume(cfg, progress)

    stage("2/4 scoring against primate data")
    kwargs = {"Cowley2023.V4-pls": {"sessions": b["sessions"]}} if b["sessions"] else {}
    for spec in [str(runs[r]) for r in rules] + ["pixels", "random:cnn"]:
        have = scored(results)
        h = resolve_model(spec).hash
        todo = [bench for bench in OFFLINE if (h, bench) not in have]
        if todo:
            print(f"scoring {spec} on {', '.join(todo)}", file=sys.stderr, flush=True)
            score_model(spec, todo, data_root, out=results, progress=progress, bench_kwargs=kwargs)
        else:
            print(f"{spec}: scored earlier, skipped", file=sys.stderr)

    stage("3/4 analyses")
    from nmnc.analyze import main as analyze
    from nmnc.bench import main as bench

    analyses = []
    for rule in ("bp", "nmnc"):
        if rule in runs:
            folder = root / f"analysis_{rule}"
            if not done(folder):
                analyze(["--checkpoint", str(runs[rule]), "--images", str(b["images"]), "--out", str(folder)] + (["--data-root", data_root] if data_root else []))
                mark_done(folder, {"checkpoint": str(runs[rule])})
            analyses.append(str(folder))
    if "bp" in runs:
        folder = root / "gradient"
        if not done(folder):
            folder.mkdir(parents=True, exist_ok=True)
            bench(["gradient", "--checkpoint", str(runs["bp"]), "--out", str(folder / "gradient.csv"), "--P", b["grad_P"],
                   "--k", "8,32", "--batch", "16", "--manifold-images", "512"] + (["--data-root", data_root] if data_root else []))
            mark_done(folder, {})
        analyses.append(str(folder))
        folder = root / "width"
        if not done(folder):
            analyze(["width-sweep", "--model", "cnn", "--widths", b["widths"], "--steps", str(b["width_steps"]),
                     "--train-examples", "5000", "--images", str(b["images"]), "--out", str(folder)] + (["--data-root", data_root] if data_root else []))
            mark_done(folder, {})
        analyses.append(str(folder))

    stage("4/4 report")
    page = build_report(str(results), [str(runs[r]) for r in rules], analyses, str(report_dir), data_root,
                        title=f"nmnc comparison report ({budget} budget)")
    print(f"\nmain job finished in {(time.perf_counter() - t0) / 60:.1f} min; report: {page}", file=sys.stderr)
    return page


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m brain_benchmarks.main", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a smoke run of every stage in a few minutes")
    p.add_argument("--data-root", help="folder holding the datasets (default $NMNC_DATA_ROOT)")
    p.add_argument("--runs", default="runs/main", help="folder for training runs and analyses (default runs/main)")
    p.add_argument("--reports", default="reports", help="folder for results and reports (default reports)")
    p.add_argument("--rules", default="bp,vnc,nmnc", help="comma-separated rules (default bp,vnc,nmnc)")
    args = p.parse_args(argv)
    rules = tuple(r.strip() for r in args.rules.split(","))
    if "bp" not in rules:
        raise NmncError("--rules must include bp: it is the reference for the report and the analyses")
    page = run_pipeline("quick" if args.quick else "default", args.data_root, args.runs, args.reports, rules)
    summary = pd.read_csv(page.parent / "summary.csv")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="brain_benchmarks.main"))
