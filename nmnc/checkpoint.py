"""Checkpoints: the one owner of the checkpoint schema.

A checkpoint is plain tensors and types (``torch.load(weights_only=True)``), written atomically,
and carries everything needed to rebuild the model and resume the run, plus provenance.
:func:`assemble` builds the payload; :class:`Checkpoint` reads it through named accessors, so no
other module indexes raw nested keys.

Keys: ``format``, ``version``, ``model`` (name, settings), ``rule`` (name, settings, state),
``config``, ``model_state``, ``optimizer_state``, ``scheduler_state``, ``rng``, ``step``,
``total_steps``, ``examples``, ``perturbations``, ``elapsed``, ``data`` (dataset, source, subset
size and seed, classes, mean, std, input size, augmentation), ``metrics``, ``provenance``.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import platform
import subprocess
import time
import warnings
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from .data.unpickle import code_names, named_globals
from .errors import CheckpointError
from .io import atomic_path

FORMAT = "nmnc-checkpoint"
VERSION = 1


def assemble(
    *,
    model: str,
    model_settings: dict,
    rule: str,
    rule_settings: dict,
    rule_state: dict,
    config: dict,
    model_state: dict,
    data: dict,
    metrics: list,
    step: int,
    total_steps: int,
    examples: int = 0,
    perturbations: int = 0,
    elapsed: float = 0.0,
    optimizer_state: dict | None = None,
    scheduler_state: dict | None = None,
    rng: dict | None = None,
    device: str = "cpu",
    world_size: int = 1,
    backend: str | None = None,
) -> dict:
    """The checkpoint payload (plain types), with provenance added."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": {"name": model, "settings": dict(model_settings)},
        "rule": {"name": rule, "settings": dict(rule_settings), "state": rule_state},
        "config": dict(config),
        "model_state": model_state,
        "optimizer_state": optimizer_state or {},
        "scheduler_state": scheduler_state or {},
        "rng": rng or {},
        "step": step,
        "total_steps": total_steps,
        "examples": examples,
        "perturbations": perturbations,
        "elapsed": elapsed,
        "data": data,
        "metrics": metrics,
        "provenance": {
            **code_version(),
            "packages": package_versions(),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "device": device,
            "world_size": world_size,  # processes that trained the run (torchrun)
            "backend": backend,  # their process group's backend: nccl, gloo, or None (one)
        },
    }


@dataclass(frozen=True)
class Checkpoint:
    """Named, read-only access to a checkpoint payload."""

    payload: dict
    path: Path | None = None

    # ---- model and rule ---------------------------------------------------------------------
    @property
    def arch(self) -> str:
        return self.payload["model"]["name"]

    @property
    def model_settings(self) -> dict:
        return dict(self.payload["model"]["settings"])

    @property
    def rule(self) -> str:
        return self.payload["rule"]["name"]

    @property
    def rule_settings(self) -> dict:
        return dict(self.payload["rule"].get("settings") or {})

    @property
    def rule_state(self) -> dict:
        return self.payload["rule"].get("state") or {}

    @property
    def model_state(self) -> dict:
        return self.payload["model_state"]

    @property
    def weights_hash(self) -> str:
        return weights_hash(self.model_state)

    # ---- run --------------------------------------------------------------------------------
    @property
    def config(self) -> dict:
        return dict(self.payload["config"])

    @property
    def seed(self) -> int | None:
        return self.payload["config"].get("seed")

    @property
    def step(self) -> int:
        return int(self.payload["step"])

    @property
    def total_steps(self) -> int:
        return int(self.payload["total_steps"])

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps

    @property
    def counters(self) -> dict:
        """Step, examples, perturbations and training seconds (what a resumed run continues)."""
        p = self.payload
        return {
            "step": p["step"],
            "examples": p["examples"],
            "perturbations": p["perturbations"],
            "elapsed": p.get("elapsed", 0.0),
        }

    @property
    def metrics(self) -> list[dict]:
        return list(self.payload["metrics"])

    @property
    def test_acc(self) -> float | None:
        """Test accuracy at the last evaluation, if any."""
        return next((m["test_acc"] for m in reversed(self.metrics) if "test_acc" in m), None)

    @property
    def val_acc(self) -> float | None:
        """Validation accuracy at the last evaluation, if the run held out a validation split."""
        return next((m["val_acc"] for m in reversed(self.metrics) if "val_acc" in m), None)

    @property
    def optimizer_state(self) -> dict:
        return self.payload["optimizer_state"]

    @property
    def scheduler_state(self) -> dict:
        return self.payload["scheduler_state"]

    @property
    def rng(self) -> dict:
        return self.payload["rng"]

    @property
    def provenance(self) -> dict:
        return dict(self.payload.get("provenance") or {})

    # ---- data and preprocessing -------------------------------------------------------------
    @property
    def dataset(self) -> str:
        return self.payload["data"]["dataset"]

    @property
    def kind(self) -> str:
        """'image' or 'sequence': what the model reads (recurrent models read sequences)."""
        return str((self.payload.get("data") or {}).get("kind", "image"))

    def require_images(self, what: str) -> None:
        """Refuse a checkpoint of a sequence model where images are needed, in one line."""
        if self.kind != "image":
            raise CheckpointError(
                f"{self.path or 'checkpoint'}: a {self.arch} trained on sequences "
                f"({self.dataset}) cannot be used by {what}; {RECURRENT_HINT}"
            )

    @property
    def input_size(self) -> int:
        return int(self.payload["data"]["input_size"])

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self.payload["data"]["mean"])

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self.payload["data"]["std"])

    @property
    def classes(self) -> list[str]:
        return list(self.payload["data"]["classes"])

    # ---- rebuilding -------------------------------------------------------------------------
    def build_model(self, device="cpu"):
        """The trained model (eval mode), rebuilt from this checkpoint alone."""
        model = self.untrained_model(seed=None)
        try:
            model.load_state_dict(self.model_state)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise CheckpointError(
                f"{self.path or 'checkpoint'}: its weights do not fit architecture '{self.arch}' "
                f"({first[:160]}); use a checkpoint written by this nmnc"
            ) from None
        return model.to(device).eval()

    def untrained_model(self, seed: int | None = -1):
        """The same architecture at initialisation (seeded with the run's seed unless given)."""
        from .models import MODELS, build_model

        if seed == -1:
            seed = self.seed or 0
        if seed is not None:
            torch.manual_seed(seed)
        return build_model(self.arch, MODELS.settings(self.arch, self.model_settings)).eval()

    def slim(self) -> dict:
        """What inference needs: architecture, weights and preprocessing; no optimizer or rule
        state."""
        d = self.payload["data"]
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": self.payload["model"],
            "model_state": self.model_state,
            "data": {k: d[k] for k in SLIM_DATA if k in d},
            "rule": {"name": self.rule},
        }


RECURRENT_HINT = (
    "recurrent checkpoints take python -m nmnc.analyze recurrent-gradient / recurrent-alignment"
)
SLIM_DATA = ("dataset", "mean", "std", "input_size", "classes", "kind")  # kept in slim checkpoints


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    payload = {"format": FORMAT, "version": VERSION, **payload}
    buf = io.BytesIO()  # serialised first, so a full disk is a plain OSError from the write
    torch.save(payload, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getbuffer())
    return path


def load_tensors(path: Path, map_location="cpu"):
    """``torch.load(weights_only=True)`` without torch's warning about pickle protocols (a file
    with a newer protocol is refused or read all the same; the user can do nothing about it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, map_location=map_location, weights_only=True)


def load_checkpoint(path: str | Path, map_location="cpu") -> Checkpoint:
    """Load and validate an nmnc checkpoint (file or run folder); a clear CheckpointError
    otherwise."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise CheckpointError(
            f"no checkpoint at {path}; give a checkpoint file or a run folder written by "
            "'python -m nmnc.train --out DIR'"
        )
    try:
        payload = load_tensors(path, map_location)
    except pickle.UnpicklingError as err:
        code = code_names(path)
        if code:
            raise CheckpointError(
                f"{path} is a pickle that names {', '.join(code[:3])}: code, not checkpoint data; "
                "nothing in it was run; delete it and give a checkpoint from 'python -m nmnc.train'"
            ) from None
        others = sorted({n for n in named_globals(path) if not n.startswith("torch.")})
        others = [n for n in others if n != "collections.OrderedDict"]
        if others or "Unsupported global" in str(err):
            named = f" ({', '.join(others[:3])})" if others else ""
            raise CheckpointError(
                f"{path} holds pickled Python objects{named} beyond plain tensors and types, "
                "so it was not written by nmnc; nothing in it was run; give a checkpoint from "
                "'python -m nmnc.train'"
            ) from None
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or damaged); "
            "use an intact copy or retrain"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        first = first.split(". ")[0]  # torch's first sentence; the rest is advice for its devs
        raise CheckpointError(
            f"{path} is not a readable checkpoint "
            f"(truncated, damaged or not a torch file: {first[:160]}); "
            "use an intact copy or retrain"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} was not written by nmnc (no '{FORMAT}' marker); "
            "give a checkpoint from 'python -m nmnc.train'"
        )
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {payload['version']}, "
            f"newer than this nmnc reads ({VERSION}); upgrade nmnc"
        )
    return Checkpoint(payload, path)


def weights_hash(state: dict) -> str:
    """Content hash of a state dict (names, dtypes, bytes): the identity of a trained variant."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = (
            state[k].detach().cpu().contiguous().reshape(-1)
        )  # 0-dim buffers (BatchNorm's step count) too
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def code_version() -> dict:
    """Git SHA and dirty flag of the nmnc source tree (``None`` outside a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        sha = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or None
        )
        dirty = (
            bool(
                subprocess.run(
                    ["git", "status", "--porcelain", "--untracked-files=no"],
                    cwd=here,
                    capture_output=True,
                    text=True,
                    timeout=5,
                ).stdout.strip()
            )
            if sha
            else None
        )
    except (OSError, subprocess.SubprocessError):
        sha, dirty = None, None
    return {"git_sha": sha, "git_dirty": dirty}


def package_versions() -> dict:
    """Versions of the packages that change results (plain strings)."""
    import numpy
    import torchvision

    from . import __version__

    # str(): torch.__version__ is a TorchVersion object, which weights_only loading refuses
    return {
        "nmnc": __version__,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "numpy": str(numpy.__version__),
        "python": platform.python_version(),
    }
