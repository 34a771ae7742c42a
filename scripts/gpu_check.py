"""GPU check (run on a CUDA machine): trains `resnet` with each rule for a few hundred steps and
prints images/s and peak GPU memory per rule.

    NMNC_DATA_ROOT=... python scripts/gpu_check.py [--steps-bp 200] [--steps-noise 60]
        [--out FILE.json]
"""

import argparse
import json
import tempfile
import time

import torch

from nmnc.config import TrainConfig, build_config
from nmnc.training import Run


def measure(rule: str, steps: int, warmup: int, batch: int, sets: dict) -> dict:
    torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as out:
        cfg = build_config(
            TrainConfig(
                model="resnet", rule=rule, batch_size=batch, steps=warmup + steps, out=out, lr=0.05
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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps-bp", type=int, default=200)
    p.add_argument("--steps-noise", type=int, default=60)
    p.add_argument("--out")
    a = p.parse_args()
    print(torch.cuda.get_device_name(), torch.__version__, flush=True)
    rows = [measure("bp", a.steps_bp, 20, 128, {})]
    print(rows[-1], flush=True)
    for rule, sets in (("vnc", {"P": 16}), ("nmnc", {"P": 16, "k": 32})):
        rows.append(measure(rule, a.steps_noise, 10, 128, sets))
        print(rows[-1], flush=True)
    print(f"{'rule':6s} {'images/s':>10s} {'step ms':>9s} {'peak GB':>8s}")
    for r in rows:
        print(
            f"{r['rule']:6s} {r['images_per_s']:10.1f} {r['step_ms']:9.1f} "
            f"{r['peak_gpu_mem_gb']:8.2f}"
        )
    if a.out:
        json.dump(rows, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
