"""Train a zoo entry from its recipe: ``python -m model_zoo.build NAME [--gpu] [--data-root D]``.

Resumes an interrupted build; records the result (identifier, test accuracy, recipe, SHA-256) in
``<zoo>/<name>/entry.json``.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from nmnc.checkpoint import load_checkpoint, weights_hash
from nmnc.data.download import file_hash
from nmnc.errors import run_cli
from nmnc.io import atomic_write_text
from nmnc.train import config_from_args, parser
from nmnc.training.trainer import train_or_resume

from .registry import checkpoint_path, get, zoo_dir


def build(name: str, gpu: bool | None = None, data_root: str | None = None, extra: list[str] | None = None) -> dict:
    e = get(name)
    gpu = torch.cuda.is_available() if gpu is None else gpu
    recipe = list(e.gpu_recipe if gpu else e.cpu_recipe) + list(extra or [])
    out = zoo_dir() / name
    args = recipe + ["--out", str(out)] + (["--data-root", data_root] if data_root else [])
    train_or_resume(config_from_args(parser().parse_args(args)))
    ck = load_checkpoint(checkpoint_path(name))
    test_acc = next((m["test_acc"] for m in reversed(ck["metrics"]) if "test_acc" in m), None)
    rec = {"name": name, "identifier": f"{name}-{weights_hash(ck['model_state'])}", "arch": e.arch, "rule": e.rule,
           "recipe": recipe, "gpu": gpu, "test_acc": test_acc, "steps": ck["step"], "sha256": file_hash(checkpoint_path(name))}
    atomic_write_text(out / "entry.json", json.dumps(rec, indent=1))
    return rec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m model_zoo.build", description=__doc__.split("\n\n")[0])
    p.add_argument("name")
    p.add_argument("--gpu", action="store_true", help="the full-size GPU recipe (default: GPU recipe when CUDA is present)")
    p.add_argument("--cpu", action="store_true", help="the CPU-sized recipe even on a GPU machine")
    p.add_argument("--data-root")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="extra settings appended to the recipe")
    args = p.parse_args(argv)
    gpu = True if args.gpu else False if args.cpu else None
    rec = build(args.name, gpu, args.data_root, ["--set", *args.set] if args.set else None)
    print(json.dumps(rec, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="model_zoo.build"))
