"""Cost of a training step against the forward passes it must run.

    python -m nmnc.timing cost [--set model=cnn --set P=16 --set batch_size=128]

Forward passes a layerwise VNC/NMNC step needs (:func:`forward_floor`): one clean pass, plus 2P
perturbed copies of the batch through the stages above each perturbed layer. The ratio step /
forward shows the overhead of noise drawing, manifold upkeep and local updates. BP and the
read-out-only control need the clean pass alone. :func:`step_speed` times one run's training step
on synthetic input against that floor, with peak GPU memory (``scripts/gpu_check.py``).

Recurrent models (``--set model=rnn``, sequences of ``steps`` steps): one clean rollout plus 2P
perturbed rollouts of the batch (``time=all``), or, one step at a time (``time=step``), 2P rollouts
from every step to the end; against a BPTT step.
"""

from __future__ import annotations

import gc
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass

import pandas as pd
import torch

from ..engine.perturb import forward_passes, frozen_norm
from ..engine.taps import activities
from ..errors import NmncError, UnknownNameError
from ..models import MODELS, build_model
from ..rules import build_rule


@dataclass(frozen=True)
class CostConfig:
    """Model, perturbations, batch size and repeats of the step-cost table."""

    model: str = "cnn"
    P: int = 16  # perturbations per example and layer
    batch_size: int = 128
    repeats: int = 3
    steps: int = 100  # recurrent models: time steps per sequence
    time: str = "all"  # recurrent models: 'all' steps perturbed at once, or one 'step' at a time
    width: float = 1.0


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats: int, warmup: int = 1, max_seconds: float = math.inf) -> tuple[float, int]:
    """(seconds per call, calls timed) of ``fn`` over ``repeats`` calls after ``warmup`` untimed
    ones, CUDA synchronised; stops early once ``max_seconds`` have passed (at least one call)."""
    for _ in range(warmup):
        fn()
    _sync()
    t, n = time.perf_counter(), 0
    while n < repeats:
        fn()
        _sync()
        n += 1
        if time.perf_counter() - t > max_seconds:
            break
    return (time.perf_counter() - t) / n, n


def forward_floor(
    model, x: torch.Tensor, layers: list[str], copies: int, max_batch: int = 4096, autocast=None
) -> None:
    """Run the forward passes a step must run and nothing else: the clean pass of the batch
    (under ``autocast``, as the trainer runs it) and, for each of ``layers``, ``copies`` copies of
    the batch through the stages above it (fp32, in chunks of whole copies of at most
    ``max_batch`` rows, as the noise rules run their perturbed passes)."""
    B = len(x)
    with torch.no_grad(), frozen_norm(model):
        with autocast or nullcontext():
            acts = activities(model, x, batch=B)
        for name in layers:
            a = acts[name].float()
            rows = a.unsqueeze(0).expand(copies, *a.shape).reshape(-1, *a.shape[1:])
            for chunk in rows.split(max(B, max_batch // B * B)):  # whole copies of the batch
                model.forward_from(name, chunk, acts)


def cost(cfg: CostConfig) -> pd.DataFrame:
    """Seconds per step of VNC, NMNC and BP, against the forward passes a noise step must run."""
    torch.manual_seed(0)
    B, P = cfg.batch_size, cfg.P
    if MODELS.get(cfg.model).kind == "recurrent":
        return _recurrent_cost(cfg)
    model = build_model(cfg.model, width=cfg.width)
    x, y = torch.randn(B, 3, model.input_size, model.input_size), torch.randint(0, 10, (B,))

    def forwards():
        forward_floor(model, x, model.hidden_layers, 2 * P)

    def bp():
        model.zero_grad()
        build_rule("bp", model).step(x, y, None)

    t_fwd = timed(forwards, cfg.repeats)[0]
    t_bp = timed(bp, cfg.repeats)[0]
    rows = [("forward passes only", t_fwd)]
    rows += _rule_rows(model, x, y, cfg, {})
    rows.append(("bp step", t_bp))
    return _table(rows, t_fwd, t_bp)


def _rule_rows(model, x, y, cfg: CostConfig, extra: dict) -> list:
    rows = []
    for rule_name in ("vnc", "nmnc"):
        rule = build_rule(rule_name, model, P=cfg.P, **extra)
        gen = torch.Generator().manual_seed(0)

        def step():
            model.zero_grad()
            rule.step(x, y, gen)

        rows.append((f"{rule_name} step", timed(step, cfg.repeats)[0]))
    return rows


def _table(rows, t_fwd: float, t_bp: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"what": what, "seconds": t, "x_forwards": t / t_fwd, "x_bp_step": t / t_bp}
            for what, t in rows
        ]
    )


def _recurrent_cost(cfg: CostConfig) -> pd.DataFrame:
    """The same table for a recurrent model: rollouts instead of forward passes."""
    from ..engine.through_time import TIMES, _rollouts

    if cfg.time not in TIMES:
        raise UnknownNameError("time", cfg.time, TIMES)
    model = build_model(cfg.model, inputs=3, num_classes=3, width=cfg.width)
    B, P, T = cfg.batch_size, cfg.P, cfg.steps
    x = model.example_input(B, T)
    y = torch.randint(0, 3, (B, T), generator=torch.Generator().manual_seed(0))
    n = model.rnn.hidden

    def forwards():  # what a noise step must run: the clean pass and the perturbed rollouts
        with torch.no_grad():
            h = model.rnn(x)
            drive = model.rnn.drive(x)
            if cfg.time == "all":
                _rollouts(model, x, drive, 2 * P, torch.zeros(2 * P * B, T, n))
            else:
                for t in range(T - 1):
                    h0 = h[:, t].repeat(2 * P, 1)
                    _rollouts(model, x, drive, 2 * P, None, h0, t + 1)

    def bp():
        model.zero_grad()
        build_rule("bp", model).step(x, y, None)

    t_fwd, t_bp = timed(forwards, cfg.repeats)[0], timed(bp, cfg.repeats)[0]
    rows = [(f"rollouts only (time={cfg.time})", t_fwd)]
    rows += _rule_rows(model, x, y, cfg, {"time": cfg.time})
    rows.append(("bp (BPTT) step", t_bp))
    return _table(rows, t_fwd, t_bp)


def step_speed(
    cfg, steps: int, warmup: int = 2, repeats: int = 3, max_seconds: float = math.inf
) -> dict:
    """One run's training step (its model, rule, batch size, optimizer and clipping, as the
    trainer runs it) on a fixed batch of random images, against its forward-pass floor.

    ``cfg`` is a :class:`~nmnc.config.TrainConfig` (e.g. a recipe's). Returns images/s, step and
    floor milliseconds, their ratio, the steps timed (``steps`` after ``warmup`` untimed ones, or
    fewer once ``max_seconds`` have passed), the forward passes the floor runs per example, and
    the peak GPU memory of the steps (weights, optimizer, rule state and activations; None on a
    CPU)."""
    from ..engine.noise import ExampleNoise
    from ..rules._noise import selected_layers
    from ..training.trainer import clip_hidden, make_optimizer, pick_device

    if MODELS.get(cfg.model).kind == "recurrent":
        raise NmncError(f"step_speed times image models; {cfg.model} is recurrent")
    device = pick_device(cfg.device)
    cuda = device.type == "cuda"
    if cuda:  # the peak of this row alone: free what earlier rows left
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, MODELS.settings(cfg.model, cfg.model_settings)).to(device)
    layout = torch.channels_last if cuda else torch.contiguous_format  # as the trainer and loader
    model = model.to(memory_format=layout)
    rule = build_rule(cfg.rule, model, **cfg.rule_settings)
    opt = make_optimizer(model, cfg)
    B, size = cfg.batch_size, model.input_size
    gen = torch.Generator(device).manual_seed(cfg.seed)
    x = torch.randn(B, 3, size, size, generator=gen, device=device)
    x = x.contiguous(memory_format=layout)
    y = torch.randint(0, cfg.model_settings["num_classes"], (B,), generator=gen, device=device)

    def autocast():  # as the trainer: bf16 clean pass on a GPU
        return torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()

    steps_run = [0]

    def step():
        model.train()
        opt.zero_grad(set_to_none=True)
        # as the trainer: noise keyed by (seed, step, example), a generator per example
        noise = ExampleNoise(cfg.seed, steps_run[0], 0, B, device)
        steps_run[0] += 1
        with autocast():
            res = rule.step(x, y, noise)
        float(res.loss)  # the trainer reads the loss every step
        if cfg.grad_clip > 0:
            clip_hidden(model, cfg.grad_clip)
        opt.step()

    step_s, timed_steps = timed(step, steps, warmup, max_seconds)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    s = cfg.rule_settings
    copies, layers = 0, []
    if "P" in s:  # a noise rule: its perturbed copies through the stages above each layer
        copies = forward_passes(s["P"], s.get("antithetic", True))
        layers = selected_layers(s.get("layers", "all"), model.hidden_layers)
        if s.get("mode") == "all":  # one pass of the copies from the lowest perturbed layer
            layers = layers[:1]

    def floor():
        forward_floor(model, x, layers, copies, s.get("max_batch", 4096), autocast())

    floor_s = timed(floor, repeats, 1, max_seconds)[0]
    return {
        "model": cfg.model,
        "rule": cfg.rule,
        "batch": B,
        **{key: s[key] for key in ("P", "k") if key in s},
        # per example: the clean pass, and a pass through the stages above a layer per copy
        "passes": 1 + copies * len(layers),
        "steps": timed_steps,
        "images_per_s": B / step_s,
        "step_ms": 1000 * step_s,
        "floor_ms": 1000 * floor_s,
        "step_per_floor": step_s / floor_s,
        "peak_gpu_gb": peak,
    }
