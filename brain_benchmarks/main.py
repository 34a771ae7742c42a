"""The main job on its built-in default: ``python -m brain_benchmarks.main [--quick]``.

Trains the small CNN on CIFAR-10 with BP, VNC and NMNC on the same budget (skipping finished runs
and resuming interrupted ones) and prints the test accuracies. Scoring against primate data and the
report are added by later stages of the pipeline.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nmnc.checkpoint import load_checkpoint
from nmnc.config import TrainConfig, build_config
from nmnc.errors import NmncError, run_cli
from nmnc.rules import RULES
from nmnc.trainer import Run, config_from_checkpoint

# Budgets sized for a 2-core CPU (about 2 minutes per noise-rule run). Units: CIFAR-10 training images.
DEFAULT = {"train_examples": 10_000, "epochs": 1, "batch_size": 64}
QUICK = {"train_examples": 1_000, "epochs": 1, "batch_size": 64}
# Same for every rule; P applies to the noise rules (perturbations per example and layer).
SETTINGS = {"grad_clip": "1.0", "eval_every": str(10**9)}
NOISE = {"P": "4"}


def train_or_resume(cfg: TrainConfig) -> dict:
    """Skip a finished run, resume an interrupted one, else start fresh."""
    path = Path(cfg.out) / "checkpoint.pt"
    if path.exists():
        ckpt = load_checkpoint(path)
        if ckpt["step"] >= ckpt["total_steps"]:
            print(f"{cfg.out}: finished earlier (step {ckpt['step']}), skipped", file=sys.stderr)
            run = Run(config_from_checkpoint(ckpt, out=cfg.out, data_root=cfg.data_root), resume_from=ckpt, progress=False)
            return run.summary()
        print(f"{cfg.out}: resuming at step {ckpt['step']}", file=sys.stderr)
        return Run(config_from_checkpoint(ckpt, out=cfg.out, data_root=cfg.data_root), resume_from=ckpt).train()
    return Run(cfg).train()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m brain_benchmarks.main", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a smoke run in about a minute")
    p.add_argument("--data-root", help="folder holding cifar10/ (default $NMNC_DATA_ROOT)")
    p.add_argument("--out", default="runs/main", help="folder for the runs (default runs/main)")
    p.add_argument("--rules", default="bp,vnc,nmnc", help="comma-separated rules to train (default bp,vnc,nmnc)")
    args = p.parse_args(argv)
    budget = QUICK if args.quick else DEFAULT
    results = {}
    for rule in args.rules.split(","):
        RULES.get(rule)
        out = Path(args.out) / ("quick" if args.quick else "default") / f"{rule}_cnn"
        sets = {**SETTINGS, **(NOISE if rule != "bp" else {})}
        cfg = build_config(TrainConfig(model="cnn", rule=rule, data_root=args.data_root, out=str(out), **budget), sets)
        results[rule] = train_or_resume(cfg)
    for rule, s in results.items():
        if s["test_acc"] is None:
            raise NmncError(f"the {rule} run in {s['checkpoint']} has no test evaluation")
        print(f"{rule:5s} cnn  CIFAR-10 test accuracy {s['test_acc']:.4f}  ({s['examples']} examples, checkpoint {s['checkpoint']})")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="brain_benchmarks.main"))
