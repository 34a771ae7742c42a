"""Run configuration: a frozen dataclass built once in ``main()`` and passed down.

Precedence: defaults < command-line flags < ``--set key=value``. ``--set`` keys are looked up in the
model's settings, then the rule's, then the training settings below; ``model.``, ``rule.`` or
``train.`` prefixes pick one explicitly. The dataset's own settings always take ``data.``
(``data.seq_len=50``, a NeuroGym task's ``data.dt=100`` or ``data.timing.stimulus=500``).
Unknown keys are an error listing the known ones.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

import torch

from ._registry import apply_overrides, guess_value
from .errors import NmncError, UnknownNameError
from .models import MODELS
from .rules import RULES


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; units in the comments. Built once, then passed down."""

    model: str = "cnn"
    rule: str = "bp"
    dataset: str = "cifar10"
    data_root: str | None = None
    download: bool = False
    train_examples: int = 0  # 0 = the whole training split; else a seeded class-balanced subset
    val_examples: int = (
        0  # >0: a class-balanced validation split held out of training (same for all runs)
    )
    steps: int = 0  # 0 = use epochs
    epochs: float = 1.0
    batch_size: int = 128
    lr: float = 0.05  # learning rate of the hidden layers (not rescaled with batch size)
    readout_lr: float = 0.0  # learning rate of the read-out stage; 0 = the same as lr
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"  # 'sgd' or 'adam'
    schedule: str = "cosine"  # 'cosine' (to 0 over the run) or 'constant'
    grad_clip: float = 0.0  # 0 = off; else clip each hidden layer's grad norm (never the read-out)
    seed: int = 0
    augment: bool = True  # random crop (pad 4) and horizontal flip
    eval_every: int = 500  # steps between test-set evaluations (and at the end)
    eval_examples: int = 0  # 0 = the whole test split
    ckpt_every: int = 200  # steps between checkpoints (and at the end)
    device: str = "auto"  # 'auto', 'cpu', 'cuda', 'cuda:1', ...
    num_workers: int = 4  # loader processes for image folders
    out: str = "runs/default"
    model_settings: dict = field(default_factory=dict)
    rule_settings: dict = field(default_factory=dict)
    dataset_settings: dict = field(default_factory=dict)  # --set data.KEY=VALUE


TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)} - {
    "model",
    "rule",
    "dataset",
    "out",
    "model_settings",
    "rule_settings",
    "dataset_settings",
}
SCOPES = ("model", "rule", "train", "data")


def parse_sets(pairs: list[str] | tuple[str, ...] | dict) -> dict[str, str]:
    """``["a=1", "b=2"]`` -> ``{"a": "1", "b": "2"}``; later pairs win; a dict passes through."""
    if isinstance(pairs, dict):
        return dict(pairs)
    out = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise NmncError(f"--set expects key=value, got '{pair}'; e.g. --set width=0.5")
        out[key.strip()] = value.strip()
    return out


def build_config(base: TrainConfig, sets: dict[str, object]) -> TrainConfig:
    """Route ``--set`` pairs to model, rule or training settings and validate them all.

    A bare key is looked up in the model's settings, then the rule's, then the training
    settings; ``model.``, ``rule.`` or ``train.`` picks one. Unknown keys and scopes are errors
    that list the known names and the closest match.
    """
    model_fields = {f.name for f in dataclasses.fields(MODELS.get(base.model).settings)}
    rule_fields = {f.name for f in dataclasses.fields(RULES.get(base.rule).settings)}
    model_s, rule_s, train_s = dict(base.model_settings), dict(base.rule_settings), {}
    data_s = dict(base.dataset_settings)
    for key, value in sets.items():
        scope, _, name = key.partition(".") if "." in key else ("", "", key)
        if scope == "data" and name:  # typed as TOML would type it: "50" and 50 are one run
            data_s[name] = guess_value(value)
            continue
        if scope and scope not in SCOPES:
            raise UnknownNameError(
                "--set scope",
                scope,
                SCOPES,
                f"write {key.split('.')[-1]}=... or model./rule./train. before it",
            )
        if scope == "model" or (not scope and name in model_fields):
            model_s[name] = value
        elif scope == "rule" or (not scope and name in rule_fields):
            rule_s[name] = value
        elif scope == "train" or (not scope and name in TRAIN_KEYS):
            if name not in TRAIN_KEYS:
                raise UnknownNameError("training setting", name, TRAIN_KEYS)
            train_s[name] = value
        else:
            known = sorted(model_fields) + sorted(rule_fields) + sorted(TRAIN_KEYS)
            raise UnknownNameError(
                "--set key",
                key,
                known,
                f"keys of model '{base.model}', rule '{base.rule}' and training",
            )
    # validate now so a bad key or value fails before any work
    model_s = dataclasses.asdict(MODELS.settings(base.model, model_s))
    rule_s = dataclasses.asdict(RULES.settings(base.rule, rule_s))
    cfg = apply_overrides(base, train_s, "training setting")
    cfg = dataclasses.replace(
        cfg, model_settings=model_s, rule_settings=rule_s, dataset_settings=data_s
    )
    check(cfg)
    return cfg


def check(cfg: TrainConfig) -> None:
    """Refuse settings that cannot train, each with a one-line reason."""
    from .data import DATASETS, check_dataset

    check_dataset(cfg.dataset, cfg.dataset_settings)
    recurrent = MODELS.get(cfg.model).kind == "recurrent"
    from .rules._noise import check_recurrent

    check_recurrent(RULES.settings(cfg.rule, cfg.rule_settings), recurrent)
    sequences = DATASETS.get(cfg.dataset).kind == "sequence"
    if recurrent != sequences:
        takes = "sequences" if recurrent else "images"
        known = DATASETS.names(kind="sequence" if recurrent else "")
        raise NmncError(
            f"model {cfg.model} takes {takes} but dataset {cfg.dataset} holds "
            f"{'sequences' if sequences else 'images'}; choose a dataset of {takes} "
            f"({', '.join(map(DATASETS.shown, known))})"
            f" or a {'recurrent' if sequences else 'convolutional'} model"
        )
    if cfg.optimizer not in ("sgd", "adam"):
        raise UnknownNameError("optimizer", cfg.optimizer, ["sgd", "adam"])
    if cfg.schedule not in ("cosine", "constant"):
        raise UnknownNameError("schedule", cfg.schedule, ["cosine", "constant"])
    for key in ("batch_size", "ckpt_every", "eval_every"):
        if getattr(cfg, key) < 1:
            raise NmncError(f"{key} must be at least 1, got {getattr(cfg, key)}")
    for key in ("steps", "train_examples", "eval_examples", "val_examples"):
        if getattr(cfg, key) < 0:
            raise NmncError(f"{key} must be 0 (the default) or positive, got {getattr(cfg, key)}")
    if cfg.epochs <= 0:
        raise NmncError(f"epochs must be positive, got {cfg.epochs}")
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", cfg.device):
        raise NmncError(f"device must be auto, cpu, cuda, cuda:N or mps, got '{cfg.device}'")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise NmncError(f"lr must be a positive number, got {cfg.lr}")
    for key in ("momentum", "weight_decay", "grad_clip", "readout_lr"):
        value = getattr(cfg, key)
        if not (math.isfinite(value) and value >= 0):
            raise NmncError(f"{key} must be 0 or a positive number, got {value}")
    if 0 < cfg.train_examples < cfg.batch_size:
        raise NmncError(
            f"batch_size {cfg.batch_size} is larger than train_examples {cfg.train_examples}; "
            "lower the batch size or raise train_examples"
        )
    if cfg.rule_settings.get("layers", "all") != "all":
        from .rules._noise import selected_layers

        with torch.device("meta"):  # names only: no weights are allocated
            hidden = (
                MODELS.get(cfg.model)
                .factory(MODELS.settings(cfg.model, cfg.model_settings))
                .hidden_layers
            )
        selected_layers(cfg.rule_settings["layers"], hidden)
    if cfg.model_settings.get("width", 1) <= 0:
        raise NmncError(f"width must be positive, got {cfg.model_settings['width']}")
    for key in ("P", "k"):
        if key in cfg.rule_settings and cfg.rule_settings[key] < 1:
            raise NmncError(f"{key} must be at least 1, got {cfg.rule_settings[key]}")


def to_json(cfg) -> str:
    """A config dataclass (possibly nested) as indented JSON: what ``--print-config`` prints."""
    import json
    from pathlib import PurePath

    def plain(v):
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, PurePath):
            return str(v)
        return v

    return json.dumps(plain(cfg), indent=1)
