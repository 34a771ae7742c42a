"""Named trained checkpoints: ``bp_cnn``, ``nmnc_resnet``, ...

Each entry has an architecture, a rule, its training recipes (the exact ``nmnc.train`` arguments:
a CPU-sized one for the built-in default and a GPU one for the full-size model) and where its
weights come from: the zoo folder (``$NMNC_ZOO``, else ``<cache>/zoo``) or a URL with a SHA-256.
Weights are never committed to git. A trained variant's identifier is ``<name>-<weights hash>``, so
no cache (ours or Brain-Score's) returns results of other weights.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from nmnc.checkpoint import load_checkpoint, weights_hash
from nmnc.data import cache_dir
from nmnc.data.download import fetch
from nmnc.errors import NmncError, UnknownNameError

COMMON = ["--dataset", "cifar10", "--set", "grad_clip=1.0", "eval_every=50", "eval_examples=1000"]
CPU = {"cnn": ["--train-examples", "10000", "--epochs", "1", "--batch-size", "64"],
       "resnet": ["--train-examples", "2000", "--epochs", "1", "--batch-size", "64", "--set", "width=0.25"]}
GPU = {"cnn": ["--epochs", "30", "--batch-size", "128"], "resnet": ["--epochs", "30", "--batch-size", "128"]}
NOISE = {"cpu": ["--set", "P=4"], "gpu": ["--set", "P=16"]}  # perturbations per example and layer


@dataclass(frozen=True)
class ZooEntry:
    name: str
    arch: str
    rule: str
    cpu_recipe: list = field(default_factory=list)
    gpu_recipe: list = field(default_factory=list)
    url: str | None = None  # published weights (slim checkpoint); None until released
    sha256: str | None = None


def _entry(arch: str, rule: str) -> ZooEntry:
    base = ["--model", arch, "--rule", rule] + COMMON
    noise = NOISE if rule != "bp" else {"cpu": [], "gpu": []}
    return ZooEntry(f"{rule}_{arch}", arch, rule, base + noise["cpu"] + CPU[arch], base + noise["gpu"] + GPU[arch])


ZOO = {e.name: e for e in (_entry(a, r) for a in ("cnn", "resnet") for r in ("bp", "vnc", "nmnc"))}


def zoo_dir() -> Path:
    return Path(os.environ.get("NMNC_ZOO") or cache_dir() / "zoo")


def get(name: str) -> ZooEntry:
    if name not in ZOO:
        raise UnknownNameError("zoo model", name, ZOO, "see 'python -m model_zoo list'")
    return ZOO[name]


def checkpoint_path(name: str) -> Path:
    return zoo_dir() / name / "checkpoint.pt"


def record(name: str) -> dict | None:
    p = zoo_dir() / name / "entry.json"
    return json.loads(p.read_text()) if p.exists() else None


def weights(name: str, download: bool = False) -> Path:
    """The checkpoint of a zoo model: built locally, or downloaded from its URL and checked."""
    e = get(name)
    path = checkpoint_path(name)
    if path.exists():
        return path
    if e.url and download:
        return fetch(e.url, path, e.sha256, what=f"zoo model {name}")
    how = f"download it with --download from {e.url}" if e.url else "no published weights yet"
    raise NmncError(f"zoo model '{name}' has no weights at {path}; build it with 'python -m model_zoo.build {name}' ({how})")


def identifier(name: str) -> str:
    """``<name>-<weights hash>``: unique for every trained variant."""
    return f"{name}-{weights_hash(load_checkpoint(weights(name))['model_state'])}"


def region_layer_map(layers: list[str], committed: dict | None = None) -> dict:
    """Region -> layer for Brain-Score: our committed layers where known, the rest spread over the hidden layers."""
    n = len(layers)
    spread = {"V1": layers[0], "V2": layers[min(1, n - 1)], "V4": layers[n // 2], "IT": layers[-1]}
    return {**spread, **(committed or {})}


def resolve(spec: str):
    """Scoring hook: a zoo name becomes its checkpoint path; anything else is left alone (None)."""
    return weights(spec) if spec in ZOO else None


def list_lines() -> list[str]:
    lines = []
    for name, e in ZOO.items():
        rec = record(name)
        have = checkpoint_path(name).exists()
        metric = f"test_acc={rec['test_acc']:.3f} id={rec['identifier']}" if rec and rec.get("test_acc") is not None else ""
        lines.append(f"{name:14s} {e.arch:7s} {e.rule:5s} {'weights present' if have else 'no weights':16s} {metric}")
    return lines
