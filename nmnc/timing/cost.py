"""Cost of a noise-correlation step against the forward passes it must run.

    python -m nmnc.timing cost [--set model=cnn --set P=16 --set batch_size=128]

Forward passes a layerwise VNC/NMNC step needs: one clean pass, plus 2P perturbed copies of the
batch through the stages above each perturbed layer. The ratio step / forward shows the overhead of
noise drawing, manifold upkeep and local updates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
import torch

from ..engine.perturb import frozen_norm
from ..engine.taps import activities
from ..models import build_model
from ..rules import build_rule


@dataclass(frozen=True)
class CostConfig:
    """Model, perturbations, batch size and repeats of the step-cost table."""

    model: str = "cnn"
    P: int = 16  # perturbations per example and layer
    batch_size: int = 128
    repeats: int = 3


def _time(fn, repeats):
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def cost(cfg: CostConfig) -> pd.DataFrame:
    """Seconds per step of VNC, NMNC and BP, against the forward passes a noise step must run."""
    torch.manual_seed(0)
    model = build_model(cfg.model)
    B, P = cfg.batch_size, cfg.P
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
    for rule_name in ("vnc", "nmnc"):
        rule = build_rule(rule_name, model, P=P)
        gen = torch.Generator().manual_seed(0)

        def step():
            model.zero_grad()
            rule.step(x, y, gen)

        rows.append((f"{rule_name} step", _time(step, cfg.repeats)))
    rows.append(("bp step", t_bp))
    return pd.DataFrame(
        [
            {"what": what, "seconds": t, "x_forwards": t / t_fwd, "x_bp_step": t / t_bp}
            for what, t in rows
        ]
    )
