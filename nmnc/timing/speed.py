"""Throughput: loader images/s, training images/s per model and rule, peak memory; and the test
accuracy one BP epoch reaches. Measurements print tables; they are never timed tests."""

from __future__ import annotations

import multiprocessing as mp
import resource
import tempfile
import time
from dataclasses import dataclass, field

import pandas as pd
import torch

from ..errors import NmncError


def peak_mb() -> float:
    """Peak resident memory of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class SpeedConfig:
    """Which models and rules are timed, at what batch size, for how many steps."""

    models: tuple[str, ...] = ("cnn", "resnet")
    rules: tuple[str, ...] = ("bp",)
    batch_size: int = 128
    steps: int = 10  # timed steps after 3 warm-up steps
    loader_batches: int = 100
    data_root: str | None = None
    run: dict = field(default_factory=dict)  # settings of every measured run (run.KEY=VALUE)


@dataclass(frozen=True)
class EpochConfig:
    """One BP epoch of a model on the full training set."""

    model: str = "cnn"
    data_root: str | None = None
    out: str | None = None  # run folder to keep (default: a temporary one)
    progress: bool = True


def loader_speed(data_root, batch_size: int, batches: int) -> dict:
    """Images/s of the CIFAR-10 loader with augmentation and normalisation."""
    from ..data import load_dataset

    data = load_dataset("cifar10", data_root)
    g = torch.Generator().manual_seed(0)
    plan = [(s, torch.randperm(len(data.train), generator=g)[:batch_size]) for s in range(batches)]
    t = time.perf_counter()
    for _ in data.train.loader(plan, True, 0):
        pass
    dt = time.perf_counter() - t
    return {
        "what": "loader (augment + normalise)",
        "images_per_s": batches * batch_size / dt,
        "peak_rss_mb": peak_mb(),
    }


def _measured_config(
    model: str, rule: str, batch_size: int, steps: int, data_root, run: dict, out: str
):
    from ..config import TrainConfig, build_config

    base = TrainConfig(
        model=model,
        rule=rule,
        batch_size=batch_size,
        steps=steps + 3,
        data_root=data_root,
        out=out,
        train_examples=batch_size * (steps + 3),
    )
    return build_config(base, {"ckpt_every": 10**9, "eval_every": 10**9, **run})


def _train_speed(q, model: str, rule: str, batch_size: int, steps: int, data_root, sets: dict):
    """Child process, so that each measurement has its own peak-memory accounting."""
    from ..training import Run

    with tempfile.TemporaryDirectory() as out:
        cfg = _measured_config(model, rule, batch_size, steps, data_root, sets, out)
        run = Run(cfg, progress=False)
        run.train(stop_after=3)  # warm-up
        t0 = run.elapsed
        run.train(stop_after=steps)
        dt = run.elapsed - t0
    q.put(
        {
            "what": f"{rule} {model} train step",
            "images_per_s": steps * batch_size / dt,
            "step_s": dt / steps,
            "peak_rss_mb": peak_mb(),
        }
    )


def train_speed(
    model: str, rule: str, batch_size: int, steps: int, data_root=None, sets=None
) -> dict:
    """Training images/s and step time of one model and rule, measured in a fresh process."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(
        target=_train_speed, args=(q, model, rule, batch_size, steps, data_root, sets or {})
    )
    p.start()
    p.join()
    if q.empty():
        raise NmncError(
            f"timing {rule} {model} failed in its measuring process (its error is above)"
        )
    return q.get()


def speed(cfg: SpeedConfig) -> pd.DataFrame:
    """The loader row, then one row per (rule, model)."""
    for r in cfg.rules:  # every setting is checked before any measurement
        for m in cfg.models:
            _measured_config(m, r, cfg.batch_size, cfg.steps, cfg.data_root, cfg.run, "unused")
    rows = [loader_speed(cfg.data_root, cfg.batch_size, cfg.loader_batches)]
    rows += [
        train_speed(m, r, cfg.batch_size, cfg.steps, cfg.data_root, cfg.run)
        for r in cfg.rules
        for m in cfg.models
    ]
    return pd.DataFrame(rows)


def epoch(cfg: EpochConfig) -> pd.DataFrame:
    """Test accuracy after one BP epoch on the full training set, with throughput and memory."""
    from ..config import TrainConfig
    from ..training import Run

    with tempfile.TemporaryDirectory() as tmp:
        tc = TrainConfig(
            model=cfg.model,
            rule="bp",
            epochs=1,
            data_root=cfg.data_root,
            out=cfg.out or tmp,
            eval_every=10**9,
            ckpt_every=10**9,
        )
        t = time.perf_counter()
        r = Run(tc, progress=cfg.progress).train()
    return pd.DataFrame(
        [
            {
                "model": cfg.model,
                "rule": "bp",
                "epochs": 1,
                "steps": r.step,
                "test_acc": r.test_acc,
                "train_images_per_s": r.examples / r.train_seconds,
                "wall_s": time.perf_counter() - t,
                "peak_rss_mb": peak_mb(),
            }
        ]
    )
