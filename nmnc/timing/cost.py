"""Cost of a noise-correlation step against the forward passes it must run.

    python -m nmnc.timing cost [--set model=cnn --set P=16 --set batch_size=128]

Forward passes a layerwise VNC/NMNC step needs: one clean pass, plus 2P perturbed copies of the
batch through the stages above each perturbed layer. The ratio step / forward shows the overhead of
noise drawing, manifold upkeep and local updates.

Recurrent models (``--set model=rnn``, sequences of ``steps`` steps): one clean rollout plus 2P
perturbed rollouts of the batch (``time=all``), or, one step at a time (``time=step``), 2P rollouts
from every step to the end; against a BPTT step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
import torch

from ..engine.perturb import frozen_norm
from ..engine.taps import activities
from ..errors import UnknownNameError
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


def _time(fn, repeats):
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def cost(cfg: CostConfig) -> pd.DataFrame:
    """Seconds per step of VNC, NMNC and BP, against the forward passes a noise step must run."""
    torch.manual_seed(0)
    B, P = cfg.batch_size, cfg.P
    if MODELS.get(cfg.model).kind == "recurrent":
        return _recurrent_cost(cfg)
    model = build_model(cfg.model, width=cfg.width)
    x, y = torch.randn(B, 3, model.input_size, model.input_size), torch.randint(0, 10, (B,))

    def forwards():
        with torch.no_grad(), frozen_norm(model):
            acts = activities(model, x, batch=len(x))
            for name, a in acts.items():
                copies = a.unsqueeze(0).expand(2 * P, *a.shape).reshape(-1, *a.shape[1:])
                for chunk in copies.split(max(B, 4096 // B * B)):  # whole copies of the batch
                    model.forward_from(name, chunk, acts)

    def bp():
        model.zero_grad()
        build_rule("bp", model).step(x, y, None)

    t_fwd = _time(forwards, cfg.repeats)
    t_bp = _time(bp, cfg.repeats)
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

        rows.append((f"{rule_name} step", _time(step, cfg.repeats)))
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

    t_fwd, t_bp = _time(forwards, cfg.repeats), _time(bp, cfg.repeats)
    rows = [(f"rollouts only (time={cfg.time})", t_fwd)]
    rows += _rule_rows(model, x, y, cfg, {"time": cfg.time})
    rows.append(("bp (BPTT) step", t_bp))
    return _table(rows, t_fwd, t_bp)
