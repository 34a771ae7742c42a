"""Checkpoints: plain tensors and types (``torch.load(weights_only=True)``), written atomically,
carrying everything needed to rebuild the model and resume the run, plus provenance."""
from __future__ import annotations

import os
import pickle
import platform
import subprocess
import zipfile
from functools import lru_cache
from pathlib import Path

import torch

from .errors import CheckpointError

FORMAT = "nmnc-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` to ``path`` via a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **payload}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load and validate an nmnc checkpoint; a clear CheckpointError for anything else."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}; give a checkpoint file or a run folder written by 'python -m nmnc.train --out DIR'")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):
            raise CheckpointError(f"{path} holds pickled Python objects beyond plain tensors and types, so it was not written by nmnc; give a checkpoint from 'python -m nmnc.train'") from None
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or damaged); use an intact copy or retrain") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated, damaged or not a torch file: {first[:160]}); use an intact copy or retrain") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} was not written by nmnc (no '{FORMAT}' marker); give a checkpoint from 'python -m nmnc.train'")
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {ckpt['version']}, newer than this nmnc reads ({VERSION}); upgrade nmnc")
    return ckpt


def model_from_checkpoint(ckpt: dict | str | Path, device="cpu"):
    """Rebuild the trained model (in eval mode) from a checkpoint alone."""
    from .models import MODELS, build_model

    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    name = ckpt["model"]["name"]
    settings = MODELS.settings(name, ckpt["model"]["settings"])
    model = build_model(name, settings)
    model.load_state_dict(ckpt["model_state"])
    return model.to(device).eval()


def weights_hash(state: dict) -> str:
    """Content hash of a state dict (names, dtypes, bytes): the identity of a trained variant."""
    import hashlib

    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def code_version() -> dict:
    """Git SHA and dirty flag of the nmnc source tree (``None`` outside a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5).stdout.strip()) if sha else None
    except (OSError, subprocess.SubprocessError):
        sha, dirty = None, None
    return {"git_sha": sha, "git_dirty": dirty}


def package_versions() -> dict:
    import numpy
    import torchvision

    from . import __version__

    # str(): torch.__version__ is a TorchVersion object, which weights_only loading refuses
    return {"nmnc": __version__, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "numpy": str(numpy.__version__), "python": platform.python_version()}
