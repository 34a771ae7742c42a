"""GPU check (one CUDA GPU): training speed of every model and rule at its GPU recipe's batch size,
against the forward passes its step must run, with peak GPU memory; then the small CIFAR-10 CNN
trained with every rule for a few epochs.

    NMNC_DATA_ROOT=... python scripts/gpu_check.py [--out DIR] [--set KEY=VALUE ...]
    python scripts/gpu_check.py --set device=cpu models=cnn batch_size=4 P=1 steps_bp=1 \\
        steps_noise=1 warmup=0 repeats=1 epochs=0.0001 eval_examples=50   # a CPU smoke run

Speed rows (synthetic random images, so no ImageNet is needed): for each model (cnn and resnet
at 32 px with recipes cnn-gpu and resnet-gpu; resnet18 and alexnet at 224 px with
resnet18-imagenet-gpu and alexnet-imagenet-gpu) and rule, ``steps_bp`` (bp, readout) or
``steps_noise`` (vnc, nmnc) timed training steps after ``warmup`` untimed ones, as the trainer
runs them (bf16 clean pass, fp32 perturbed passes, clipping, SGD); a row stops early after
``max_seconds``. The floor is the time of the forward passes the step must run: the clean pass,
plus for a noise rule 2P copies of the batch through the stages above every hidden layer
(nmnc.timing.cost). step/floor is the overhead on top: about 3 for BP (backward pass), near 1 for
the read-out-only control, and for VNC/NMNC the cost of noise, manifolds and local updates.
Peak GPU memory is torch.cuda.max_memory_allocated over the timed steps, reset per row.
``steps_noise`` = 20 = NMNC's manifold refresh interval, so each timed window holds one refresh.

Training rows: recipe cnn-gpu, each rule for ``epochs`` epochs of real CIFAR-10 (--data-root or
NMNC_DATA_ROOT), at the recipe's learning rate (not a selected one), test accuracy on
``eval_examples`` test images (0 = all 10,000).

Budget on one H200, estimated from operation counts before any run (the JSON records each row's
real wall_s). A noise step's floor is the clean pass plus 2P = 32 copies through the stages above
each hidden layer: about 62 forward passes' work for cnn, 313 for resnet, 294 for resnet18 and 72
for alexnet. Speed rows, at warmup + timed steps each: resnet18's VNC and NMNC about 2 s a step
(273 TFLOP in fp32), so about 50 s each with their floors; resnet's about 10 s each; alexnet's
about 7 s each; every bp and readout row and every cnn row a few seconds: about 2.7 minutes.
Training rows: 3 epochs of 390 steps per rule, about 5 s for bp and for readout, 35 s for vnc and
45 s for nmnc (a step of many small kernels, about 30-40 ms): about 1.7 minutes. Start-up
(imports, CUDA, CIFAR-10 decoded once from its zip on 16 cores): about 20 s. In all about 4.5
minutes; at twice these step times, about 8 (``max_seconds`` caps every speed row's timing, and
speed rows that would start after ``budget_minutes`` = 9, less the training rows' estimate, are
skipped with a note in their row, so the whole check stays within 10 minutes).

``batch_size`` and ``P`` replace every recipe's (0 keeps them); ``--out DIR`` writes
DIR/gpu_check.json after every row, so a stopped run keeps what it measured.
"""

import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tabulate import tabulate

from nmnc.cli import entry, print_config, script_settings
from nmnc.errors import NmncError, UnknownNameError
from nmnc.io import atomic_write_text
from nmnc.timing import step_speed
from nmnc.training import Run, get_recipe
from nmnc.training.recipes import NOISE_FREE
from nmnc.training.trainer import pick_device

OUT_FILE = "gpu_check.json"
RECIPES = {  # model -> the GPU recipe whose batch size, P and k its speed rows use
    "cnn": "cnn-gpu",
    "resnet": "resnet-gpu",
    "resnet18": "resnet18-imagenet-gpu",
    "alexnet": "alexnet-imagenet-gpu",
}
TRAIN_RECIPE = "cnn-gpu"


@dataclass(frozen=True)
class GpuCheck:
    """Settings of the GPU check (``--set KEY=VALUE``)."""

    models: tuple[str, ...] = ("cnn", "resnet", "resnet18", "alexnet")
    rules: tuple[str, ...] = ("bp", "vnc", "nmnc", "readout")
    steps_bp: int = 50  # timed steps of bp and readout
    steps_noise: int = 20  # timed steps of vnc and nmnc (NMNC refreshes its manifold every 20)
    warmup: int = 2  # untimed steps before timing
    repeats: int = 3  # timed calls of the forward-pass floor (after one untimed)
    max_seconds: float = 60.0  # a speed row stops timing after this many seconds
    budget_minutes: float = 9.0  # speed rows left once this has passed are skipped (said so)
    epochs: float = 3.0  # training of the CIFAR-10 cnn per rule (0 = no training)
    eval_examples: int = 0  # test images of the training rows (0 = all 10,000)
    batch_size: int = 0  # 0 = each recipe's
    P: int = 0  # perturbations per example and layer; 0 = each recipe's
    device: str = "cuda"
    data_root: str | None = None  # --data-root
    out: str | None = None  # --out: folder for gpu_check.json

    def __post_init__(self):
        for key in ("steps_bp", "steps_noise", "repeats"):
            if getattr(self, key) < 1:
                raise NmncError(f"{key} must be at least 1, got {getattr(self, key)}")
        for key in ("warmup", "epochs", "eval_examples", "batch_size", "P"):
            if getattr(self, key) < 0:
                raise NmncError(f"{key} must be 0 or positive, got {getattr(self, key)}")
        if not self.max_seconds > 0 or not self.budget_minutes > 0:
            raise NmncError(
                "max_seconds and budget_minutes must be positive, got "
                f"{self.max_seconds} and {self.budget_minutes}"
            )


def overrides(cfg: GpuCheck, rule: str) -> dict:
    """Settings on top of a recipe for one rule: batch size and P where given, no checkpoints."""
    extra = {"device": cfg.device, "ckpt_every": 10**9, "eval_every": 10**9}
    if cfg.batch_size:
        extra["batch_size"] = cfg.batch_size
    if cfg.P and rule not in NOISE_FREE:
        extra["P"] = cfg.P
    return extra


def speed_configs(cfg: GpuCheck) -> list:
    """The run configuration of every speed row, checked before any work."""
    for model in cfg.models:
        if model not in RECIPES:
            raise UnknownNameError("model of the GPU check", model, RECIPES)
    return [
        get_recipe(RECIPES[model]).config(rule, "unused", extra=overrides(cfg, rule))
        for model in cfg.models
        for rule in cfg.rules
    ]


def train_config(cfg: GpuCheck, rule: str, out: str):
    """The training run of ``rule``: recipe cnn-gpu for ``cfg.epochs`` epochs."""
    extra = {**overrides(cfg, rule), "epochs": cfg.epochs, "eval_examples": cfg.eval_examples}
    return get_recipe(TRAIN_RECIPE).config(rule, out, data_root=cfg.data_root, extra=extra)


def train_rule(cfg: GpuCheck, rule: str) -> dict:
    """Train the CIFAR-10 cnn with ``rule`` for ``cfg.epochs`` epochs; its test accuracy."""
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        run = Run(train_config(cfg, rule, out), progress=False)
        result = run.train()
    return {
        "model": run.cfg.model,
        "rule": rule,
        "epochs": cfg.epochs,
        "steps": result.step,
        "lr": run.cfg.lr,
        "train_loss_last": run.metrics[-1]["loss"],
        "test_acc": result.test_acc,
        "images_per_s": result.examples / result.train_seconds,
        "wall_s": time.perf_counter() - t,
    }


SPEED_COLUMNS = {  # key -> (header, number format)
    "model": ("model", ""),
    "rule": ("rule", ""),
    "batch": ("batch", "d"),
    "P": ("P", "g"),
    "k": ("k", "g"),
    "passes": ("passes", "d"),
    "steps": ("steps", "d"),
    "images_per_s": ("images/s", ".1f"),
    "step_ms": ("step ms", ".1f"),
    "floor_ms": ("floor ms", ".1f"),
    "step_per_floor": ("step/floor", ".2f"),
    "peak_gpu_gb": ("peak GB", ".1f"),
    "error": ("error", ""),
}
TRAIN_COLUMNS = {
    "model": ("model", ""),
    "rule": ("rule", ""),
    "epochs": ("epochs", "g"),
    "steps": ("steps", "d"),
    "lr": ("lr", "g"),
    "test_acc": ("test acc", ".3f"),
    "images_per_s": ("images/s", ".0f"),
    "wall_s": ("wall s", ".1f"),
}


def table(rows: list[dict], columns: dict) -> str:
    """The rows as a plain-text table of ``columns`` (key -> header, number format)."""
    body = [[row.get(key) for key in columns] for row in rows]
    headers = [header for header, _ in columns.values()]
    formats = [fmt for _, fmt in columns.values()]
    return tabulate(body, headers=headers, floatfmt=formats, intfmt=formats, missingval="")


def gpu_check(cfg: GpuCheck) -> dict:
    """Speed rows for every model and rule, then training rows for every rule; printed as they
    come and written to ``cfg.out``/gpu_check.json after each row."""
    configs = speed_configs(cfg)
    if cfg.epochs > 0:  # every training setting is checked before any work, the data too
        from nmnc.data import load_dataset

        for rule in cfg.rules:
            train_config(cfg, rule, "unused")
        load_dataset("cifar10", cfg.data_root)
    device = pick_device(cfg.device)
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "torch": torch.__version__,
        "config": dataclasses.asdict(cfg),
        "speed": [],
        "training": [],
    }
    t0 = time.perf_counter()

    def record(part: str, row: dict) -> None:
        report[part].append(row)
        report["seconds"] = time.perf_counter() - t0
        print(json.dumps(row), flush=True)
        if cfg.out:
            atomic_write_text(Path(cfg.out) / OUT_FILE, json.dumps(report, indent=1))

    print(report["device"], report["torch"], flush=True)
    for run_cfg in configs:
        steps = cfg.steps_bp if run_cfg.rule in NOISE_FREE else cfg.steps_noise
        t = time.perf_counter()
        train_s = 60 * cfg.epochs * len(cfg.rules) / 3  # about a minute per 3 epochs and rule
        if t - t0 + train_s > 60 * cfg.budget_minutes:  # keep the whole check inside the budget
            row = {"model": run_cfg.model, "rule": run_cfg.rule, "batch": run_cfg.batch_size}
            record("speed", {**row, "error": f"skipped: over budget_minutes={cfg.budget_minutes}"})
            continue
        try:
            row = step_speed(run_cfg, steps, cfg.warmup, cfg.repeats, cfg.max_seconds)
        except torch.cuda.OutOfMemoryError:  # what the check is for: say so, and go on
            row = {"model": run_cfg.model, "rule": run_cfg.rule, "batch": run_cfg.batch_size}
            row["error"] = "out of GPU memory"
        record("speed", {**row, "wall_s": time.perf_counter() - t})
    if cfg.epochs > 0:
        for rule in cfg.rules:
            record("training", train_rule(cfg, rule))
    print(f"\nspeed at each recipe's batch size ({report['device']})")
    print(table(report["speed"], SPEED_COLUMNS))
    if report["training"]:
        print(f"\n{TRAIN_RECIPE}: CIFAR-10 training for {cfg.epochs:g} epochs per rule")
        print(table(report["training"], TRAIN_COLUMNS))
    print(f"\n{report['seconds']:.0f} s in all")
    return report


def main(argv: list[str] | None = None) -> int:
    """Parse flags into a :class:`GpuCheck`, refuse a CUDA check without CUDA, and run it."""
    cfg, args = script_settings(
        GpuCheck, argv, "python scripts/gpu_check.py", __doc__, OUT_FILE, "gpu_check setting"
    )
    speed_configs(cfg)  # unknown models and bad settings fail here, before any work
    if args.print_config:
        return print_config(cfg)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise NmncError(
            f"device={cfg.device} but CUDA is not available here; run scripts/gpu_check.py on a "
            "CUDA machine, or smoke-test it on a CPU with --set device=cpu and tiny settings "
            "(see --help)"
        )
    gpu_check(cfg)
    return 0


if __name__ == "__main__":
    entry(main, "gpu_check")
