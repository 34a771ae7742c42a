"""Timing tables: ``python -m nmnc.timing speed | epoch | cost [--set KEY=VALUE ...]``.

speed   loader images/s, training images/s per model and rule (models=cnn,resnet rules=bp),
        peak memory
epoch   cnn test accuracy after one BP epoch on the full training set
cost    a VNC/NMNC step against the forward passes it must run, and against a BP step
"""

from __future__ import annotations

import dataclasses
import resource

import torch

from .._registry import apply_overrides
from ..cli import entry, parser, print_config, subcommands
from ..config import parse_sets
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
        keys = [f.name for f in dataclasses.fields(config) if f.name not in ("data_root", "sets")]
        parser(
            "",
            help_text,
            parent=sub,
            name=name,
            quiet=False,
            sets=f"setting: {', '.join(keys)}",
            data_root=name != "cost",
        )
    args = p.parse_args(argv)
    config, job, _ = jobs[args.command]
    pairs = parse_sets(args.sets)
    fields = {f.name for f in dataclasses.fields(config)}
    base = config(data_root=args.data_root) if "data_root" in fields else config()
    if "sets" in fields:  # speed: model./rule./train. keys are settings of the measured runs
        scoped = {
            k: v
            for k, v in pairs.items()
            if k.split(".")[0] in ("model", "rule", "train") and "." in k
        }
        pairs = {k: v for k, v in pairs.items() if k not in scoped}
        base = dataclasses.replace(base, sets=scoped)
    cfg = apply_overrides(base, pairs, f"{args.command} setting")
    if args.print_config:
        return print_config(cfg)
    print(f"{args.command}: {torch.get_num_threads()} threads")
    print(job(cfg).to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    entry(main, "nmnc.timing")
