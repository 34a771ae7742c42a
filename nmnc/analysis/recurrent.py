"""Analyses of recurrent networks: gradient quality against BPTT, and the hidden-state manifold.

    df = recurrent_gradients(RecurrentGradientConfig(checkpoint="runs/rnn_bp"))
    al, dims = recurrent_alignment(RecurrentAlignmentConfig(checkpoint="runs/rnn_bp"))

Both run on the checkpoint and on the same architecture at initialisation (``state``), on test
sequences of the checkpoint's own dataset and settings.

**Gradient quality** (``gradient.csv``): for each rule (``vnc`` energy-matched, ``nmnc`` with white
or PCA-shaped noise at each k, ``readout``: no estimate), ``time`` mode and P, the cosine between
the rule's estimate of ``dL/dh_t`` at every step (its own ``estimate``, as in training) and the
exact one from BPTT, per sequence over all steps (``cos_activity`` mean, ``rms_cos``), and in
weight space (the local update fed the estimate against BPTT's weight gradient, ``cos_weight``).
``alpha`` is the share of the exact gradient on the manifold, ``chance`` k/n; VNC is measured at
the noise energy of NMNC at each k (``match_k``). Theory (white
noise, ``time='all'``, every step perturbed at once): ``E cos^2 = alpha P / (P + T k - 1)`` (VNC:
alpha = 1, k = n); ``time='step'`` has the per-step law, so its whole-sequence theory is NaN.

**Manifold** (``alignment.csv``, ``dimension.csv``): the top-k principal subspace U_k of the hidden
states pooled over time and sequences; ``alpha_jacobian = E|U_k^T J^T r|^2 / E|J^T r|^2`` for random
output directions r (J: every later output with respect to h_t, through time), ``alpha_gradient``
the same for the actual output error, against ``chance`` k/n; participation ratio and TwoNN
dimension of the states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from ..checkpoint import load_checkpoint
from ..data import load_dataset
from ..engine.through_time import TIMES
from ..errors import NmncError, UnknownNameError
from ..io import atomic_write_text
from ..models._base import INPUT
from ..objective import loss, output_error
from ..progress import tqdm
from ..rules import build_rule
from .dimension import participation_ratio, twonn
from .gradient import NO_ESTIMATE

RULES = ("vnc", "nmnc", "readout")
SHAPES = ("white", "pca")


@dataclass(frozen=True)
class RecurrentGradientConfig:
    """What :func:`recurrent_gradients` measures, and where the table goes."""

    checkpoint: str  # checkpoint file or run folder of a recurrent model
    out: str | None = None  # folder for gradient.csv; None = do not write
    data_root: str | None = None
    P: tuple[int, ...] = (1, 4, 16)
    k: tuple[int, ...] = (4, 16)
    time: tuple[str, ...] = TIMES  # 'all' steps perturbed at once and/or one 'step' at a time
    rules: tuple[str, ...] = RULES
    noise_shapes: tuple[str, ...] = SHAPES
    batch_size: int = 16  # test sequences whose gradients are estimated
    manifold_sequences: int = 128  # training sequences the NMNC manifold is fitted on
    sigma: float | None = None  # noise std; None = the rules' default
    progress: bool = True

    def __post_init__(self):
        for key in ("P", "k", "time", "rules", "noise_shapes"):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        for key in ("P", "k"):
            if not getattr(self, key) or any(int(v) != v or v < 1 for v in getattr(self, key)):
                raise NmncError(
                    f"{key} must be whole numbers of at least 1, got {getattr(self, key)}"
                )
        for key, allowed in (("time", TIMES), ("rules", RULES), ("noise_shapes", SHAPES)):
            if not getattr(self, key):
                raise NmncError(f"{key} must name at least one of {', '.join(allowed)}")
            for value in getattr(self, key):
                if value not in allowed:
                    raise UnknownNameError(key.rstrip("s"), value, allowed)
        for key in ("batch_size", "manifold_sequences"):
            if getattr(self, key) < 1:
                raise NmncError(f"{key} must be at least 1, got {getattr(self, key)}")


@dataclass(frozen=True)
class RecurrentAlignmentConfig:
    """What :func:`recurrent_alignment` measures."""

    checkpoint: str
    out: str | None = None  # folder for alignment.csv and dimension.csv
    data_root: str | None = None
    k: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    sequences: int = 64  # test sequences
    directions: int = 8  # random output directions r per sequence (alpha_jacobian)
    progress: bool = True

    def __post_init__(self):
        object.__setattr__(self, "k", tuple(self.k))
        if not self.k or any(v < 1 for v in self.k) or self.sequences < 2 or self.directions < 1:
            raise NmncError(
                "k must be positive, sequences at least 2 and directions at least 1; got "
                f"k={list(self.k)}, sequences={self.sequences}, directions={self.directions}"
            )


def _models(checkpoint: str, data_root):
    """(checkpoint, its data, [(state, model)]) for a recurrent checkpoint; others are refused."""
    ckpt = load_checkpoint(checkpoint)
    if ckpt.kind != "sequence":
        raise NmncError(
            f"{checkpoint} holds a {ckpt.arch}, not a recurrent model; the recurrent analyses "
            "take rnn or gru checkpoints (python -m nmnc.analyze gradient takes the others)"
        )
    data = load_dataset(ckpt.dataset, data_root, settings=ckpt.config.get("dataset_settings"))
    return ckpt, data, [("trained", ckpt.build_model()), ("init", ckpt.untrained_model())]


def _sequences(split, n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(split), generator=g)[:n]
    x, y, _ = split.batch(idx, False, None)
    return x, y


def state_gradients(model, x: torch.Tensor, y: torch.Tensor, e=None) -> torch.Tensor:
    """``dL/dh_t`` at every step (B, T, n), through time (BPTT); with ``e`` the gradient of
    ``sum e . logits`` instead of the loss."""
    zero = torch.zeros(len(x), x.shape[1], model.rnn.hidden, requires_grad=True)
    logits = model.rollout(x, zero)
    target = loss(logits, y) if e is None else (logits * e).sum()
    return torch.autograd.grad(target, zero)[0]


def local_weight_gradient(model, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The local update's recurrent-layer gradient fed the state gradients ``g`` (flattened)."""
    params = [p for p in model.rnn.parameters() if p.requires_grad]
    states = model.walk(x, detach_inputs=True)[0]["rnn"]
    return torch.cat([t.flatten() for t in torch.autograd.grad(states, params, g)])


def recurrent_gradients(cfg: RecurrentGradientConfig) -> pd.DataFrame:
    """One row per (state, rule, noise_shape, time, k, P); written to ``<out>/gradient.csv``."""
    ckpt, data, models = _models(cfg.checkpoint, cfg.data_root)
    x, y = _sequences(data.test, cfg.batch_size, 0)
    xm, _ = _sequences(data.train, cfg.manifold_sequences, 1)
    rows = []
    for state, model in models:
        rows += _gradient_rows(model, x, y, xm, cfg, state)
    df = pd.DataFrame(rows)
    if cfg.out is not None:
        atomic_write_text(Path(cfg.out) / "gradient.csv", df.to_csv(index=False))
    return df


def _gradient_rows(model, x, y, xm, cfg: RecurrentGradientConfig, state: str) -> list[dict]:
    model.eval()
    with torch.no_grad():
        acts, logits = model.walk(x)
        states_m = model.walk(xm)[0]["rnn"]
    h, e, T, n = acts["rnn"], output_error(logits, y), x.shape[1], model.rnn.hidden
    true = state_gradients(model, x, y)
    w_true = local_weight_gradient(model, x, true)
    sigma = {} if cfg.sigma is None else {"sigma": cfg.sigma}
    work = [
        (rule, shape, time, P, k)
        for rule in cfg.rules
        for shape in (cfg.noise_shapes if rule == "nmnc" else ("white",))
        for time in (cfg.time if rule != "readout" else ("all",))
        for P in cfg.P
        for k in (cfg.k if rule != "readout" else (0,))  # VNC: the energy of NMNC at each k
    ]
    fitted = {}
    rows = []
    for rule_name, shape, time, P, k in tqdm(
        work, desc=f"recurrent gradients ({state})", leave=False, disable=not cfg.progress
    ):
        k = min(k, n)
        base = {"state": state, "rule": rule_name, "noise_shape": shape, "time": time, "P": P}
        base["match_k"] = k  # VNC's noise energy is NMNC's at this k (per step)
        if rule_name == "readout":  # hidden weights stay at initialisation: no estimate
            rows.append({**base, "n": n, "k": 0, "T": T, **NO_ESTIMATE})
            continue
        pooled = states_m.shape[0] * states_m.shape[1]  # the manifold sees every pooled state
        extra = (
            {"k": k, "noise_shape": shape, "buffer": pooled}
            if rule_name == "nmnc"
            else {"match_k": k}
        )
        rule = build_rule(rule_name, model, P=P, time=time, **extra, **sigma)
        alpha = 1.0
        if rule_name == "nmnc":
            if (k, shape) not in fitted:
                rule.observe({"rnn": states_m})
                fitted[(k, shape)] = rule.manifolds
            rule.manifolds = fitted[(k, shape)]
            m = rule.manifolds["rnn"]
            proj = m.project(true.reshape(-1, n)).reshape(true.shape)
            on = (proj.flatten(1) ** 2).sum(1) / (true.flatten(1) ** 2).sum(1).clamp_min(1e-30)
            alpha = float(on.mean())
        gen = torch.Generator().manual_seed(P * 1000 + k)
        est = rule.estimate({"rnn": h}, e, y, gen, {INPUT: x})["rnn"]
        cos = F.cosine_similarity(est.flatten(1), true.flatten(1), dim=1)
        w_est = local_weight_gradient(model, x, est)
        white = rule_name == "vnc" or shape == "white"
        dim = T * (k if rule_name == "nmnc" else n)
        units = k if rule_name == "nmnc" else n  # dimensions the noise spans at each step
        theory = math.sqrt(alpha * P / (P + dim - 1)) if white and time == "all" else math.nan
        rows.append(
            {
                **base,
                "n": n,
                "k": units,
                "T": T,
                "alpha": alpha,
                "chance": units / n,
                "cos_activity": cos.mean().item(),
                "rms_cos": (cos**2).mean().sqrt().item(),
                "rms_cos_theory": theory,
                "cos_weight": F.cosine_similarity(w_est, w_true, dim=0).item(),
            }
        )
    return rows


def recurrent_alignment(cfg: RecurrentAlignmentConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Jacobian-manifold alignment against k and the hidden-state dimension, trained and at
    initialisation; written to ``<out>/alignment.csv`` and ``<out>/dimension.csv``."""
    ckpt, data, models = _models(cfg.checkpoint, cfg.data_root)
    x, y = _sequences(data.test, cfg.sequences, 2)
    align, dims = [], []
    g = torch.Generator().manual_seed(3)
    for state, model in tqdm(models, desc="recurrent alignment", disable=not cfg.progress):
        model.eval()
        with torch.no_grad():
            acts, logits = model.walk(x)
        S = acts["rnn"].reshape(-1, model.rnn.hidden)  # states pooled over time and sequences
        n = S.shape[1]
        centred = S - S.mean(0)
        U_all = torch.linalg.svd(centred, full_matrices=False)[2].T  # (n, n) principal axes
        grads = {"gradient": state_gradients(model, x, y, output_error(logits, y))}
        rand = [torch.randn(logits.shape, generator=g) for _ in range(cfg.directions)]
        grads["jacobian"] = torch.cat([state_gradients(model, x, y, r) for r in rand])
        for k in sorted({min(k, n) for k in cfg.k}):
            U = U_all[:, :k]
            row = {"state": state, "k": k, "n": n, "chance": k / n}
            for kind, G in grads.items():
                G = G.reshape(-1, n)
                row[f"alpha_{kind}"] = float(((G @ U) ** 2).sum() / (G**2).sum().clamp_min(1e-30))
            align.append(row)
        dims.append(
            {
                "state": state,
                "n": n,
                "participation_ratio": participation_ratio(S),
                "twonn": twonn(S[torch.randperm(len(S), generator=g)[:2000]]),
            }
        )
    a, d = pd.DataFrame(align), pd.DataFrame(dims)
    if cfg.out is not None:
        atomic_write_text(Path(cfg.out) / "alignment.csv", a.to_csv(index=False))
        atomic_write_text(Path(cfg.out) / "dimension.csv", d.to_csv(index=False))
    return a, d


def gradient_table(df: pd.DataFrame, value: str = "rms_cos") -> pd.DataFrame:
    """``value`` with rows (state, rule, noise_shape, time, k) and columns P."""
    keys = ["state", "rule", "noise_shape", "time", "k", "match_k", "P"]
    return df.groupby(keys, sort=False)[value].first().unstack("P")
