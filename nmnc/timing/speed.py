"""Benchmarks that print tables (never timed tests).

    python -m nmnc.bench speed [--models cnn,resnet] [--batch-size 128] [--steps 20]
    python -m nmnc.bench epoch [--model cnn]          # test accuracy after one BP epoch on the full training set
    python -m nmnc.bench gradient --checkpoint PATH --out FILE.csv
    python -m nmnc.bench cost [--model cnn] [--P 16]   # noise-rule step vs its forward passes and BP
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time

import torch

from .errors import run_cli


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _loader_speed(data_root, batch_size: int, batches: int) -> dict:
    from .data import load_dataset

    data = load_dataset("cifar10", data_root)
    g = torch.Generator().manual_seed(0)
    plan = [(s, torch.randperm(len(data.train), generator=g)[:batch_size]) for s in range(batches)]
    t = time.perf_counter()
    for x, _ in data.train.loader(plan, True, 0):
        pass
    dt = time.perf_counter() - t
    return {"what": "loader (augment + normalise)", "images_per_s": batches * batch_size / dt, "peak_rss_mb": _peak_mb()}


def _train_speed(q, model: str, rule: str, batch_size: int, steps: int, data_root, sets: dict):
    """Child process: fresh peak-memory accounting per measurement."""
    from .config import TrainConfig, build_config
    from .trainer import Run

    with tempfile.TemporaryDirectory() as out:
        cfg = build_config(TrainConfig(model=model, rule=rule, batch_size=batch_size, steps=steps + 3, data_root=data_root,
                                       out=out, train_examples=batch_size * (steps + 3)), {"ckpt_every": 10**9, "eval_every": 10**9, **sets})
        run = Run(cfg, progress=False)
        run.train(stop_after=3)  # warm-up
        t0 = run.elapsed
        run.train(stop_after=steps)
        dt = run.elapsed - t0
    q.put({"what": f"{rule} {model} train step", "images_per_s": steps * batch_size / dt, "step_s": dt / steps, "peak_rss_mb": _peak_mb()})


def measure(model, rule, batch_size, steps, data_root=None, sets=None) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_train_speed, args=(q, model, rule, batch_size, steps, data_root, sets or {}))
    p.start()
    row = q.get()
    p.join()
    return row


def print_table(rows: list[dict]) -> None:
    import pandas as pd

    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:,.3f}"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m nmnc.bench")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed", help="loader and training throughput, peak memory")
    s.add_argument("--models", default="cnn,resnet")
    s.add_argument("--rules", default="bp")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--steps", type=int, default=10)
    s.add_argument("--data-root")
    s.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE")
    e = sub.add_parser("epoch", help="test accuracy after one BP epoch on the full training set")
    e.add_argument("--model", default="cnn")
    e.add_argument("--data-root")
    e.add_argument("--out", default=None)
    from .bench_gradient import add_parser as add_gradient

    add_gradient(sub)
    from .bench_cost import add_parser as add_cost

    add_cost(sub)
    args = p.parse_args(argv)
    torch.set_num_threads(torch.get_num_threads())
    if args.cmd == "speed":
        from .config import parse_sets

        rows = [_loader_speed(args.data_root, args.batch_size, 100)]
        for rule in args.rules.split(","):
            for model in args.models.split(","):
                rows.append(measure(model, rule, args.batch_size, args.steps, args.data_root, parse_sets(args.set)))
        print_table(rows)
    elif args.cmd == "epoch":
        from .config import TrainConfig
        from .trainer import Run

        with tempfile.TemporaryDirectory() as tmp:
            cfg = TrainConfig(model=args.model, rule="bp", epochs=1, data_root=args.data_root, out=args.out or tmp,
                              eval_every=10**9, ckpt_every=10**9)
            t = time.perf_counter()
            summary = Run(cfg).train()
        print_table([{"model": args.model, "rule": "bp", "epochs": 1, "steps": summary["step"], "test_acc": summary["test_acc"],
                      "train_images_per_s": summary["examples"] / summary["train_seconds"], "wall_s": time.perf_counter() - t,
                      "peak_rss_mb": _peak_mb()}])
    else:
        args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="nmnc.bench"))
