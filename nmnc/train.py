"""Command line: ``python -m nmnc.train --model cnn --rule bp --dataset cifar10 --out runs/bp``.

Data parallel on N processes: ``torchrun --standalone --nproc-per-node N -m nmnc.train ...``
(``--batch-size`` stays the global batch; see nmnc/engine/distributed.py).

``--list`` shows models, rules, datasets and recipes; ``--recipe NAME`` starts from a named
recipe; ``--resume DIR`` continues a killed run; ``--print-config`` prints the resolved
configuration as JSON without training. The run folder (``--out DIR``) holds ``checkpoint.pt``,
``metrics.jsonl`` and ``run.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .cli import entry, out_dir, print_config, writable
from .cli import parser as make_parser
from .config import TrainConfig, build_config, parse_sets
from .data import DATASETS
from .engine.distributed import leave, main_process
from .errors import NmncError
from .models import MODELS
from .rules import RULES
from .training import RECIPES, get_recipe


def parser() -> argparse.ArgumentParser:
    """The flags of ``python -m nmnc.train``."""
    d = TrainConfig()
    p = make_parser(
        "python -m nmnc.train",
        __doc__.split("\n\n")[0],
        out="run folder: checkpoint.pt, metrics.jsonl and run.json are written here",
        sets="model, rule or training setting, e.g. width=0.5 sigma=0.05 momentum=0.9; "
        "the dataset's own as data.KEY, e.g. data.seq_len=50 or a NeuroGym task's data.dt=100",
        listing="list models, rules, datasets and recipes, then exit",
    )
    p.add_argument("--model", help=f"architecture (default {d.model}, or the recipe's)")
    p.add_argument("--rule", default=d.rule, help=f"learning rule (default {d.rule})")
    p.add_argument("--dataset", help=f"dataset (default {d.dataset}, or the recipe's)")
    p.add_argument(
        "--recipe", help="start from a named recipe (see --list); flags and --set override it"
    )
    p.add_argument("--download", action="store_true", help="download the dataset if it is missing")
    p.add_argument(
        "--train-examples",
        type=int,
        metavar="N",
        help="train on a seeded class-balanced subset of N images",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="optimizer steps")
    g.add_argument(
        "--epochs", type=float, help=f"epochs over the training set (default {d.epochs})"
    )
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument(
        "--seed", type=int, help=f"seed of initialisation, batches, noise (default {d.seed})"
    )
    p.add_argument("--no-augment", action="store_true", help="turn off random crop and flip")
    p.add_argument(
        "--resume",
        metavar="DIR",
        help=(
            "continue the run saved in DIR "
            "(other flags but --steps/--epochs/--data-root are taken from it)"
        ),
    )
    return p


def list_all() -> str:
    """Every registered model, rule, dataset (with their settings) and recipe, one per line."""
    lines = []
    for title, reg in (("models", MODELS), ("rules", RULES), ("datasets", DATASETS)):
        lines.append(f"{title}:")
        for name in reg.names():
            e = reg.entry(name)
            fields = dataclasses.fields(e.settings)
            keys = [f"{f.name}={f.default}" for f in fields]
            if reg is DATASETS and keys:
                keys = [f"data.{k}" for k in keys]
            tag = f"({e.kind}) " if e.kind else ""
            size = [f.default for f in fields if f.name == "input_size"]
            if reg is MODELS and not e.kind and size:  # an image model: its input size up front
                tag = f"(image, {size[0]} px) "
            lines.append(
                f"  {reg.shown(name):10s} {tag}{e.help}"
                + (f"  [{', '.join(keys)}]" if keys else "")
            )
            if e.family and hasattr(e.factory, "names"):
                lines.append(f"    {e.family}: {', '.join(e.factory.names())}")
    lines.append("recipes:")
    lines += [f"  {name:12s} {RECIPES.get(name).help}" for name in RECIPES.names()]
    return "\n".join(lines)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run configuration the flags describe (validated; unknown names and keys are errors)."""
    if not args.out:
        raise NmncError(
            "--out DIR is required (the run folder for checkpoint.pt and metrics.jsonl)"
        )
    out_dir(args.out, "the run's checkpoint.pt and metrics.jsonl")
    if args.steps is not None and args.steps < 1:
        raise NmncError(f"--steps must be at least 1, got {args.steps}")
    if args.train_examples is not None and args.train_examples < 1:
        raise NmncError(f"--train-examples must be at least 1, got {args.train_examples}")
    sets: dict = {}
    base = TrainConfig(
        rule=args.rule,
        seed=TrainConfig.seed if args.seed is None else args.seed,
        out=args.out,
        data_root=args.data_root,
        download=args.download,
    )
    if args.recipe:
        recipe = get_recipe(args.recipe)
        base = dataclasses.replace(base, model=recipe.model, dataset=recipe.dataset)
        sets = recipe.settings(args.rule)
    flags = {"model": args.model, "dataset": args.dataset}
    base = dataclasses.replace(base, **{k: v for k, v in flags.items() if v is not None})
    for reg, name in ((MODELS, base.model), (RULES, base.rule), (DATASETS, base.dataset)):
        reg.get(name)
    flag_sets = {
        "train_examples": args.train_examples,
        "steps": args.steps,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
    }
    sets.update({k: v for k, v in flag_sets.items() if v is not None})
    if args.steps is not None:
        sets["epochs"] = TrainConfig.epochs
    if args.epochs is not None:
        sets["steps"] = 0
    if args.no_augment:
        sets["augment"] = False
    return build_config(base, {**sets, **parse_sets(args.sets)})


def main(argv=None) -> int:
    """Train (or resume) one run and print its summary as JSON."""
    from .checkpoint import load_checkpoint
    from .training import config_from_checkpoint, resume, train

    args = parser().parse_args(argv)
    if args.list:
        print(list_all())
        return 0
    progress = not args.quiet
    if args.resume:
        flags = {
            "model": "--model",
            "rule": "--rule",
            "dataset": "--dataset",
            "recipe": "--recipe",
            "out": "--out",
            "lr": "--lr",
            "batch_size": "--batch-size",
            "seed": "--seed",
            "train_examples": "--train-examples",
            "sets": "--set",
        }
        given = [
            flag
            for k, flag in flags.items()
            if getattr(args, k) not in (None, [], TrainConfig.rule)
        ]
        given += ["--no-augment"] * args.no_augment + ["--download"] * args.download
        if given:
            raise NmncError(
                f"--resume continues a run with its saved settings, so {', '.join(given)} "
                "cannot be given with it; only --steps, --epochs, --data-root and --quiet can"
            )
        for flag, value in (("--steps", args.steps), ("--epochs", args.epochs)):
            if value is not None and value <= 0:
                raise NmncError(f"{flag} must be positive, got {value}")
        changes = {"data_root": args.data_root} if args.data_root else {}
        if args.steps is not None:
            changes["steps"] = args.steps
        if args.epochs is not None:
            changes.update(epochs=args.epochs, steps=0)
        if args.print_config:
            ckpt = load_checkpoint(Path(args.resume) / "checkpoint.pt")
            return print_config(config_from_checkpoint(ckpt, out=args.resume, **changes))
        writable(args.resume, "--resume", "the run's next checkpoints")
        result = resume(args.resume, progress, **changes)
    else:
        cfg = config_from_args(args)
        if args.print_config:
            return print_config(cfg)
        result = train(cfg, progress=progress)
    leave()
    if not main_process():  # under torchrun, rank 0 reports
        return 0
    print(json.dumps(result.to_dict()))
    if result.test_acc is not None:
        print(
            f"test accuracy: {result.test_acc:.4f} after {result.step} steps "
            f"({result.examples} examples)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    entry(main, "nmnc.train")
