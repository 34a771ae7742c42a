"""Train a zoo entry from its recipe; resume an interrupted build.

``python -m model_zoo build NAME [--gpu | --cpu] [--set KEY=VALUE ...] [--print-config]``
(``python -m model_zoo.build NAME`` is the same). The result (identifier, test accuracy, recipe,
SHA-256) is recorded in ``<zoo>/<name>/entry.json``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nmnc.checkpoint import load_checkpoint
from nmnc.cli import entry, print_config
from nmnc.cli import parser as make_parser
from nmnc.config import TrainConfig, parse_sets
from nmnc.data.download import file_hash
from nmnc.errors import NmncError
from nmnc.io import atomic_write_text
from nmnc.training import train_or_resume
from nmnc.training.recipes import recipe_steps
from nmnc.training.trainer import check_run_folder, learned_settings

from .registry import ZOO, checkpoint_path, get, has_weights, variant_id, zoo_dir

# Rough seconds per training example, for the one-line estimate printed before a build (the
# progress bar then shows the measured rate). CPU: 2 cores, resnet at width 0.25, noise rules at
# P = 4. GPU: one H200 at batch 128 (resnet: BP 13 ms, VNC 127 ms, NMNC 177 ms a step at P = 16),
# also used for the smaller cnn as an upper bound.
SECONDS_PER_EXAMPLE = {
    "cpu": {
        ("cnn", "bp"): 0.0015,
        ("cnn", "vnc"): 0.02,
        ("cnn", "nmnc"): 0.02,
        ("resnet", "bp"): 0.01,
        ("resnet", "vnc"): 0.3,
        ("resnet", "nmnc"): 0.3,
    },
    "gpu": {
        ("cnn", "bp"): 0.0001,
        ("cnn", "vnc"): 0.001,
        ("cnn", "nmnc"): 0.0014,
        ("resnet", "bp"): 0.0001,
        ("resnet", "vnc"): 0.001,
        ("resnet", "nmnc"): 0.0014,
    },
}


@dataclass(frozen=True)
class BuildConfig:
    """Which zoo entry to build, with which recipe (GPU or CPU) and extra settings."""

    name: str
    gpu: bool | None = None  # None: the GPU recipe when CUDA is present, else the CPU recipe
    data_root: str | None = None
    sets: dict = field(
        default_factory=dict
    )  # settings on top of the recipe (any --set key of nmnc.train)
    progress: bool = True


@dataclass(frozen=True)
class ZooRecord:
    """What a build records in ``<zoo>/<name>/entry.json``."""

    name: str
    identifier: str
    arch: str
    rule: str
    recipe: str
    gpu: bool
    test_acc: float | None
    steps: int
    sha256: str
    settings: dict  # every setting that changed what the run learned (typed)


def train_config(cfg: BuildConfig) -> TrainConfig:
    """The training configuration a build runs: the entry's recipe, then ``cfg.sets``."""
    e = get(cfg.name)
    gpu = torch.cuda.is_available() if cfg.gpu is None else cfg.gpu
    return e.recipe(gpu).config(
        e.rule, zoo_dir() / cfg.name, seed=0, data_root=cfg.data_root, extra=cfg.sets
    )


def build_entry(cfg: BuildConfig) -> ZooRecord:
    """Train (or resume) a zoo entry from its recipe and record the result."""
    e = get(cfg.name)
    gpu = torch.cuda.is_available() if cfg.gpu is None else cfg.gpu
    recipe = e.recipe(gpu)
    tcfg = train_config(cfg)
    result = train_or_resume(tcfg, progress=cfg.progress)
    ck = load_checkpoint(result.checkpoint)
    rec = ZooRecord(
        cfg.name,
        variant_id(cfg.name, ck.weights_hash),
        e.arch,
        e.rule,
        recipe.name,
        gpu,
        ck.test_acc,
        ck.step,
        file_hash(checkpoint_path(cfg.name)),
        learned_settings(tcfg),
    )
    atomic_write_text(
        zoo_dir() / cfg.name / "entry.json", json.dumps(dataclasses.asdict(rec), indent=1)
    )
    return rec


def estimate_minutes(cfg: BuildConfig, gpu: bool) -> float:
    """A rough wall-time estimate of a build (the progress bar then shows the real rate)."""
    e = get(cfg.name)
    tcfg = train_config(cfg)
    steps = tcfg.steps or recipe_steps(e.recipe(gpu), e.rule)
    per = SECONDS_PER_EXAMPLE["gpu" if gpu else "cpu"].get((e.arch, e.rule), 0.05)
    width = tcfg.model_settings.get("width", 1.0) if not gpu else 1.0
    return steps * tcfg.batch_size * per * width / 60


def ensure_weights(
    name: str,
    build: bool = True,
    sets: dict | None = None,
    progress: bool = True,
    data_root: str | None = None,
) -> Path:
    """The checkpoint of zoo model ``name``; built from its recipe first when no weights are
    here."""
    if has_weights(name):
        if sets:  # weights trained with other settings are never passed off as these
            check_run_folder(train_config(BuildConfig(name, data_root=data_root, sets=dict(sets))))
        return checkpoint_path(name)
    if not build:
        raise NmncError(
            f"zoo model '{name}' has no weights in {zoo_dir()}; build it with "
            f"'python -m model_zoo build {name}', or leave out --no-build to build it on first use"
        )
    cfg = BuildConfig(name, data_root=data_root, sets=dict(sets or {}), progress=progress)
    gpu = torch.cuda.is_available()  # the recipe train_config picks
    tcfg, recipe = train_config(cfg), get(name).recipe(gpu)
    where = "a GPU" if gpu else "2 CPU cores"
    minutes = max(estimate_minutes(cfg, gpu), 0.1)
    print(
        f"zoo model '{name}' has no weights: building it now from recipe {recipe.name} "
        f"({tcfg.model}, {tcfg.rule}; about {minutes:.1f} min on {where}) "
        f"into {zoo_dir() / name}",
        file=sys.stderr,
        flush=True,
    )
    build_entry(cfg)
    return checkpoint_path(name)


def add_arguments(p) -> None:
    """The flags of a build (zoo name, ``--gpu`` or ``--cpu``)."""
    p.add_argument("name", help=f"zoo entry: {', '.join(ZOO.names())}")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--gpu", action="store_true", help="the full-size GPU recipe (default when CUDA is present)"
    )
    g.add_argument("--cpu", action="store_true", help="the CPU-sized recipe even on a GPU machine")


def run(args) -> int:
    """Build from parsed flags (shared by ``python -m model_zoo build`` and ``model_zoo.build``)."""
    gpu = True if args.gpu else False if args.cpu else None
    cfg = BuildConfig(
        args.name, gpu, args.data_root, parse_sets(args.sets), progress=not args.quiet
    )
    if gpu and not torch.cuda.is_available():
        raise NmncError(
            "--gpu asks for the full-size GPU recipe, but CUDA is not available here; "
            "leave it out to build the CPU recipe"
        )
    tcfg = train_config(cfg)
    if args.print_config:
        return print_config(tcfg)
    on_gpu = torch.cuda.is_available() if gpu is None else gpu
    minutes = max(estimate_minutes(cfg, on_gpu), 0.1)
    print(
        f"building {args.name} from recipe {get(args.name).recipe(on_gpu).name} ({tcfg.model}, "
        f"{tcfg.rule}; about {minutes:.1f} min on {'a GPU' if on_gpu else '2 CPU cores'})",
        file=sys.stderr,
        flush=True,
    )
    print(json.dumps(dataclasses.asdict(build_entry(cfg)), indent=1))
    return 0


def main(argv=None) -> int:
    """``python -m model_zoo.build NAME``: train a zoo entry from its recipe."""
    p = make_parser(
        "python -m model_zoo.build",
        __doc__.split("\n\n")[0],
        sets="setting on top of the recipe (any --set key of nmnc.train)",
    )
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    entry(main, "model_zoo.build")
