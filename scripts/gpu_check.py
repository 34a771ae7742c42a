"""GPU check (run on a CUDA machine): trains `resnet` with each rule for a few hundred steps and
prints images/s and peak GPU memory per rule.

    NMNC_DATA_ROOT=... python scripts/gpu_check.py [--set steps_bp=200 --set steps_noise=60]
        [--out DIR] [--print-config]

BP is timed for ``steps_bp`` steps after ``warmup_bp`` untimed ones; VNC (P=16) and NMNC (P=16,
k=32) for ``steps_noise`` after ``warmup_noise``; batch ``batch_size``. With ``--out DIR`` the
rows are also written to DIR/gpu_check.json.
"""

import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from nmnc.cli import apply_sets, entry, out_dir, parser, print_config
from nmnc.errors import NmncError
from nmnc.io import atomic_write_text
from nmnc.training import Run, get_recipe

OUT_FILE = "gpu_check.json"
RECIPE = "resnet-gpu"  # the zoo's full-size recipe: P = 16, k = 32 for the noise rules


@dataclass(frozen=True)
class GpuCheck:
    """Settings of the GPU check (``--set KEY=VALUE``)."""

    steps_bp: int = 200  # timed BP steps
    steps_noise: int = 60  # timed VNC and NMNC steps
    warmup_bp: int = 20  # untimed BP steps before timing
    warmup_noise: int = 10  # untimed VNC and NMNC steps before timing
    batch_size: int = 128
    data_root: str | None = None  # --data-root
    out: str | None = None  # --out: folder for gpu_check.json


def measure(rule: str, steps: int, warmup: int, batch: int, data_root: str | None = None) -> dict:
    """Images/s, step time and peak GPU memory of ``steps`` steps of the ``resnet-gpu`` recipe's
    run of ``rule`` after ``warmup`` untimed ones, with the final training loss and test
    accuracy."""
    torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as out:
        extra = {
            "steps": warmup + steps,
            "batch_size": batch,
            "ckpt_every": 10**9,
            "eval_every": 10**9,
            "device": "cuda",
        }
        cfg = get_recipe(RECIPE).config(rule, out, data_root=data_root, extra=extra)
        run = Run(cfg, progress=False)
        run.train(stop_after=warmup)
        torch.cuda.synchronize()
        t = time.perf_counter()
        run.train(stop_after=steps)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        ev = run.evaluate()
    noise = {k: cfg.rule_settings[k] for k in ("P", "k") if k in cfg.rule_settings}
    return {
        "rule": rule,
        "model": cfg.model,
        "batch": batch,
        "steps_timed": steps,
        **noise,
        "images_per_s": steps * batch / dt,
        "step_ms": 1000 * dt / steps,
        "peak_gpu_mem_gb": torch.cuda.max_memory_allocated() / 2**30,
        "train_loss_last": run.metrics[-1]["loss"],
        "test_acc": ev["test_acc"],
    }


def main(argv: list[str] | None = None) -> int:
    """Parse flags into a :class:`GpuCheck`, time BP, VNC and NMNC on resnet, print a row per
    rule and a table, and write DIR/gpu_check.json with ``--out DIR``."""
    keys = [f.name for f in dataclasses.fields(GpuCheck) if f.name not in ("data_root", "out")]
    p = parser(
        "python scripts/gpu_check.py",
        __doc__,
        out=f"folder for {OUT_FILE} (the measured rows)",
        sets=f"setting: {', '.join(keys)}",
        quiet=False,
    )
    args = p.parse_args(argv)
    flags = {"data_root": "--data-root", "out": "--out"}
    cfg = apply_sets(
        GpuCheck(data_root=args.data_root, out=args.out), args.sets, "gpu_check setting", flags
    )
    if cfg.out:
        out_dir(cfg.out, OUT_FILE)
    if args.print_config:
        return print_config(cfg)
    if not torch.cuda.is_available():
        raise NmncError("no CUDA device here; run scripts/gpu_check.py on a CUDA machine")
    print(torch.cuda.get_device_name(), torch.__version__, flush=True)
    rows = [measure("bp", cfg.steps_bp, cfg.warmup_bp, cfg.batch_size, cfg.data_root)]
    print(rows[-1], flush=True)
    for rule in ("vnc", "nmnc"):
        rows.append(measure(rule, cfg.steps_noise, cfg.warmup_noise, cfg.batch_size, cfg.data_root))
        print(rows[-1], flush=True)
    print(f"{'rule':6s} {'images/s':>10s} {'step ms':>9s} {'peak GB':>8s}")
    for r in rows:
        print(
            f"{r['rule']:6s} {r['images_per_s']:10.1f} {r['step_ms']:9.1f} "
            f"{r['peak_gpu_mem_gb']:8.2f}"
        )
    if cfg.out:
        atomic_write_text(Path(cfg.out) / OUT_FILE, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    entry(main, "gpu_check")
