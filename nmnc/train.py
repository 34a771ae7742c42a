"""Command line: ``python -m nmnc.train --model cnn --rule bp --dataset cifar10 --out runs/bp``.

``--list`` shows models, rules and datasets; ``--resume DIR`` continues a killed run.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .config import TrainConfig, build_config, parse_sets
from .data import DATASETS
from .errors import NmncError, run_cli
from .models import MODELS
from .rules import RULES


def parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m nmnc.train", description="Train a network with a learning rule (bp, vnc, nmnc).")
    p.add_argument("--model", default=d.model, help=f"architecture (default {d.model})")
    p.add_argument("--rule", default=d.rule, help=f"learning rule (default {d.rule})")
    p.add_argument("--dataset", default=d.dataset, help=f"dataset (default {d.dataset})")
    p.add_argument("--data-root", help="folder holding the datasets (default: $NMNC_DATA_ROOT, else ~/.cache/nmnc/data)")
    p.add_argument("--download", action="store_true", help="download the dataset if it is missing")
    p.add_argument("--train-examples", type=int, default=0, metavar="N", help="train on a seeded class-balanced subset of N images")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="optimizer steps")
    g.add_argument("--epochs", type=float, help=f"epochs over the training set (default {d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--no-augment", action="store_true", help="turn off random crop and flip")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="model, rule or training setting, e.g. width=0.5 sigma=0.05 momentum=0.9")
    p.add_argument("--out", help="run folder: checkpoint.pt and metrics.jsonl are written here")
    p.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR (other flags but --steps/--epochs/--data-root are taken from it)")
    p.add_argument("--list", action="store_true", help="list models, rules and datasets, then exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def list_all() -> str:
    lines = []
    for title, reg in (("models", MODELS), ("rules", RULES), ("datasets", DATASETS)):
        lines.append(f"{title}:")
        for name in reg.names():
            e = reg.get(name)
            keys = [f"{f.name}={f.default}" for f in dataclasses.fields(e.settings)]
            lines.append(f"  {name:10s} {e.help}" + (f"  [{', '.join(keys)}]" if keys else ""))
    return "\n".join(lines)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run configuration the flags describe (validated; unknown names and keys are errors)."""
    if not args.out:
        raise NmncError("--out DIR is required (the run folder for checkpoint.pt and metrics.jsonl)")
    for reg, name in ((MODELS, args.model), (RULES, args.rule), (DATASETS, args.dataset)):
        reg.get(name)
    base = TrainConfig(model=args.model, rule=args.rule, dataset=args.dataset, data_root=args.data_root,
                       download=args.download, train_examples=args.train_examples, steps=args.steps or 0,
                       epochs=args.epochs or TrainConfig.epochs, batch_size=args.batch_size, lr=args.lr,
                       seed=args.seed, augment=not args.no_augment, out=args.out)
    return build_config(base, parse_sets(args.set))


def main(argv=None) -> int:
    from .trainer import Run, config_from_checkpoint
    from .checkpoint import load_checkpoint

    args = parser().parse_args(argv)
    if args.list:
        print(list_all())
        return 0
    progress = not args.quiet
    if args.resume:
        ckpt = load_checkpoint(Path(args.resume) / "checkpoint.pt")
        changes = {"out": args.resume}
        if args.steps:
            changes.update(steps=args.steps)
        if args.epochs:
            changes.update(epochs=args.epochs, steps=0)
        if args.data_root:
            changes["data_root"] = args.data_root
        run = Run(config_from_checkpoint(ckpt, **changes), resume_from=ckpt, progress=progress)
        print(f"resuming {args.resume} at step {run.step} of {run.total_steps}", file=sys.stderr)
    else:
        if args.out and (Path(args.out) / "checkpoint.pt").exists():
            raise NmncError(f"{args.out} already holds a run; pass --resume {args.out} to continue it, or choose another --out")
        run = Run(config_from_args(args), progress=progress)
    summary = run.train()
    print(json.dumps(summary))
    if summary["test_acc"] is not None:
        print(f"test accuracy: {summary['test_acc']:.4f} after {summary['step']} steps ({summary['examples']} examples)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="nmnc.train"))
