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

from nmnc._registry import apply_overrides
from nmnc.cli import entry, out_dir, parser, print_config
from nmnc.config import TrainConfig, build_config, parse_sets
from nmnc.errors import NmncError, UnknownNameError
from nmnc.training import Run

OUT_FILE = "gpu_check.json"


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


def measure(
    rule: str, steps: int, warmup: int, batch: int, sets: dict, data_root: str | None = None
) -> dict:
    """Images/s, step time and peak GPU memory of ``steps`` resnet steps of ``rule`` after
    ``warmup`` untimed ones, with the final training loss and test accuracy."""
    torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as out:
        cfg = build_config(
            TrainConfig(
                model="resnet",
                rule=rule,
                data_root=data_root,
                batch_size=batch,
                steps=warmup + steps,
                out=out,
                lr=0.05,
            ),
            {"ckpt_every": 10**9, "eval_every": 10**9, "device": "cuda", **sets},
        )
        run = Run(cfg, progress=False)
        run.train(stop_after=warmup)
        torch.cuda.synchronize()
        t = time.perf_counter()
        run.train(stop_after=steps)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        ev = run.evaluate()
    return {
        "rule": rule,
        "model": "resnet",
        "batch": batch,
        "steps_timed": steps,
        **{k: v for k, v in sets.items()},
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
    pairs = parse_sets(args.sets)
    for key in pairs:
        if key not in keys:
            raise UnknownNameError("gpu_check setting", key, keys)
    cfg = apply_overrides(
        GpuCheck(data_root=args.data_root, out=args.out), pairs, "gpu_check setting"
    )
    if cfg.out:
        out_dir(cfg.out, OUT_FILE)
    if args.print_config:
        return print_config(cfg)
    if not torch.cuda.is_available():
        raise NmncError("no CUDA device here; run scripts/gpu_check.py on a CUDA machine")
    print(torch.cuda.get_device_name(), torch.__version__, flush=True)
    rows = [measure("bp", cfg.steps_bp, cfg.warmup_bp, cfg.batch_size, {}, cfg.data_root)]
    print(rows[-1], flush=True)
    for rule, sets in (("vnc", {"P": 16}), ("nmnc", {"P": 16, "k": 32})):
        rows.append(
            measure(rule, cfg.steps_noise, cfg.warmup_noise, cfg.batch_size, sets, cfg.data_root)
        )
        print(rows[-1], flush=True)
    print(f"{'rule':6s} {'images/s':>10s} {'step ms':>9s} {'peak GB':>8s}")
    for r in rows:
        print(
            f"{r['rule']:6s} {r['images_per_s']:10.1f} {r['step_ms']:9.1f} "
            f"{r['peak_gpu_mem_gb']:8.2f}"
        )
    if cfg.out:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        with open(Path(cfg.out) / OUT_FILE, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    entry(main, "gpu_check")
