"""Timing tables: ``python -m nmnc.timing speed | epoch | cost [--set KEY=VALUE ...]``.

speed   loader images/s, training images/s per model and rule, peak memory
        (--set models=cnn,resnet --set rules=bp --set run.KEY=VALUE for the measured runs)
epoch   cnn test accuracy after one BP epoch on the full training set (--out DIR keeps the run)
cost    a VNC/NMNC step against the forward passes it must run, and against a BP step
"""

from __future__ import annotations

import dataclasses
import resource

import torch

from ..cli import apply_sets, entry, out_dir, parser, print_config, subcommands
from . import CostConfig, EpochConfig, SpeedConfig, cost, epoch, speed


def main(argv=None) -> int:
    """Run one timing job and print its table."""
    p = parser("python -m nmnc.timing", __doc__, data_root=False, print_config=False, quiet=False)
    sub = subcommands(p)
    jobs = {
        "speed": (SpeedConfig, speed, "loader and training throughput, peak memory"),
        "epoch": (EpochConfig, epoch, "test accuracy after one BP epoch on the full training set"),
        "cost": (CostConfig, cost, "noise-rule step time against its forward passes and BP"),
    }
    for name, (config, _, help_text) in jobs.items():
        keys = [
            f.name
            for f in dataclasses.fields(config)
            if f.name not in ("data_root", "out", "progress")
        ]
        parser(
            "",
            help_text,
            parent=sub,
            name=name,
            quiet=name == "epoch",
            sets=f"setting: {', '.join(keys)}",
            data_root=name != "cost",
            out="folder that keeps the run (checkpoint.pt, metrics.jsonl)"
            if name == "epoch"
            else None,
        )
    args = p.parse_args(argv)
    config, job, _ = jobs[args.command]
    fields = {f.name for f in dataclasses.fields(config)}
    given = {
        "data_root": getattr(args, "data_root", None),
        "out": getattr(args, "out", None),
        "progress": not getattr(args, "quiet", False),
    }
    base = config(**{k: v for k, v in given.items() if k in fields})
    if getattr(args, "out", None):
        out_dir(args.out, "the trained run")
    cfg = apply_sets(
        base,
        args.sets,
        f"{args.command} setting",
        {"out": "--out", "data_root": "--data-root", "progress": "--quiet"},
    )
    if args.print_config:
        return print_config(cfg)
    print(f"{args.command}: {torch.get_num_threads()} threads")
    print(job(cfg).to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    entry(main, "nmnc.timing")
