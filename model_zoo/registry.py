"""Named trained checkpoints: ``bp_cnn``, ``nmnc_resnet``, ...

Each entry has an architecture, a rule and two training recipes by name (a CPU-sized one and a
full-size GPU one, declared once in ``nmnc/training/recipes.toml``), and says where its weights
come from: the zoo folder (``$NMNC_ZOO``, else ``<cache>/zoo``) or a URL with a SHA-256. Weights
are never committed to git. A trained variant's identifier is ``<name>-<weights hash>``, so no
cache (ours or Brain-Score's) returns results of other weights.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from nmnc._registry import Registry
from nmnc.checkpoint import load_checkpoint
from nmnc.data import cache_dir
from nmnc.data.download import fetch
from nmnc.errors import NmncError
from nmnc.training import get_recipe

ZOO = Registry("zoo model", "see 'python -m model_zoo --list'")


@dataclass(frozen=True)
class ZooEntry:
    """A zoo name: architecture, rule, its CPU and GPU recipes, and published weights if any."""

    name: str
    arch: str
    rule: str
    cpu_recipe: str  # recipe names in nmnc/training/recipes.toml
    gpu_recipe: str
    url: str | None = None  # published weights (slim checkpoint); None until released
    sha256: str | None = None

    def recipe(self, gpu: bool):
        """The recipe this entry is built with on a GPU (full size) or a CPU."""
        return get_recipe(self.gpu_recipe if gpu else self.cpu_recipe)


for _arch in ("cnn", "resnet"):
    for _rule in ("bp", "vnc", "nmnc"):
        ZOO.add(
            f"{_rule}_{_arch}",
            ZooEntry(f"{_rule}_{_arch}", _arch, _rule, f"{_arch}-cpu", f"{_arch}-gpu"),
            f"{_arch} trained with {_rule}",
        )


def zoo_dir() -> Path:
    """``$NMNC_ZOO``, else ``<cache>/zoo``."""
    return Path(os.environ.get("NMNC_ZOO") or cache_dir() / "zoo")


def get(name: str) -> ZooEntry:
    """A zoo entry by name (unknown names list the known ones and the closest match)."""
    return ZOO.get(name).factory


def checkpoint_path(name: str) -> Path:
    """Where a zoo model's checkpoint lives in the zoo folder."""
    return zoo_dir() / name / "checkpoint.pt"


def record(name: str) -> dict | None:
    """What the last build recorded (identifier, test accuracy, recipe, SHA-256), if any."""
    p = zoo_dir() / name / "entry.json"
    return json.loads(p.read_text()) if p.exists() else None


def has_weights(name: str) -> bool:
    """Whether the zoo model's weights are present here (a finished build or a download)."""
    path = checkpoint_path(name)
    return path.exists() and (record(name) is not None or load_checkpoint(path).finished)


def weights(name: str, download: bool = False) -> Path:
    """The checkpoint of a zoo model: built locally, or downloaded from its URL and checked."""
    e = get(name)
    path = checkpoint_path(name)
    if has_weights(name):
        return path
    if e.url and download:
        return fetch(e.url, path, e.sha256, what=f"zoo model {name}")
    how = f"download it with --download from {e.url}" if e.url else "no published weights yet"
    raise NmncError(
        f"zoo model '{name}' has no weights at {path}; "
        f"build it with 'python -m model_zoo build {name}' ({how})"
    )


def variant_id(name: str, weights_hash: str) -> str:
    """``<name>-<weights hash>``: the identifier of one trained variant of a zoo model."""
    return f"{name}-{weights_hash}"


def identifier(name: str) -> str:
    """The identifier of the zoo model's weights that are here (see :func:`variant_id`)."""
    return variant_id(name, load_checkpoint(weights(name)).weights_hash)


def list_lines() -> list[str]:
    """One line per zoo entry: name, architecture, rule, whether weights are present, key
    metrics."""
    lines = []
    for name in ZOO.names():
        e = get(name)
        rec = record(name)
        have = "weights present" if has_weights(name) else "no weights"
        metric = (
            f"test_acc={rec['test_acc']:.3f} id={rec['identifier']}"
            if rec and rec.get("test_acc") is not None
            else ""
        )
        lines.append(f"{name:14s} {e.arch:7s} {e.rule:5s} {have:16s} {metric}")
    return lines
