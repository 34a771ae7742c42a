"""Gradient quality: cosine between noise-correlation estimates and true (backprop) gradients.

    df = gradient_quality(GradientConfig(checkpoint="runs/cnn_bp", out="reports/cnn_bp"))
    print(gradient_summary(df))

For the checkpoint and the same architecture at initialisation, for every hidden layer, VNC and
NMNC estimates at each P and k: cosine with the true gradient in activity space (per example,
averaged) and in weight space (the layer's own parameter gradient for the batch), alpha (share of
the true gradient on the manifold) and chance k/n. The perturbations are the rules' own
(``rule.noise``), with the rules' default sigma unless one is given, and each NMNC manifold is the
rule's own estimator fitted on a sample of training images.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checkpoint import load_checkpoint
from ..data import load_dataset
from ..engine.manifold import ManifoldEstimator
from ..engine.perturb import correlate, output_error
from ..engine.taps import activities
from ..errors import NmncError, UnknownNameError
from ..io import atomic_write_text
from ..rules import Rule, build_rule

CHUNK = 256  # manifold images per forward pass (memory bound only)


AUTOCAST = ("none", "bf16")


@dataclass(frozen=True)
class GradientConfig:
    """What :func:`gradient_quality` measures, and where the table goes."""

    checkpoint: str  # checkpoint file or run folder
    out: str | None = None  # folder for gradient.csv; None = do not write
    data_root: str | None = None
    P: tuple[int, ...] = (1, 4, 16, 64)  # perturbations per example
    k: tuple[int, ...] = (8, 32, 128)  # NMNC manifold dimensions
    batch_size: int = 32  # test images whose gradients are estimated
    manifold_images: int = 1024  # training images the NMNC manifold is fitted on
    sigma: float | None = None  # noise std (activity units); None = the rules' own default
    centered: bool = True  # manifold from the centred covariance (False: uncentred second moment)
    autocast: str = "none"  # 'bf16': also run the clean pass under bf16 autocast -> cos_fp32
    progress: bool = True

    def __post_init__(self):
        object.__setattr__(self, "P", tuple(self.P))
        object.__setattr__(self, "k", tuple(self.k))
        for key in ("P", "k"):
            values = getattr(self, key)
            if not values or any(int(v) != v or v < 1 for v in values):
                raise NmncError(
                    f"{key} must be one or more whole numbers of at least 1, got {list(values)}"
                )
        for key in ("batch_size", "manifold_images"):
            if getattr(self, key) < 1:
                raise NmncError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.autocast not in AUTOCAST:
            raise UnknownNameError("autocast", self.autocast, AUTOCAST)
        if self.sigma is not None and not self.sigma > 0:
            raise NmncError(
                f"sigma must be positive (or None for the rules' default), got {self.sigma}"
            )


def gradient_quality(cfg: GradientConfig) -> pd.DataFrame:
    """One row per (state, rule, layer, k, P): the trained checkpoint and its architecture at init.

    Columns: state, rule, layer, n, k, P, alpha, chance, cos_activity, cos_weight,
    rms_cos_theory, vnc_P_equivalent; with ``autocast='bf16'`` also cos_fp32, the cosine of the
    estimate made as the rules make it when the clean pass runs under bf16 (perturbed passes in
    fp32) with the fp32 estimate from the same noise. Written to ``<cfg.out>/gradient.csv``.
    """
    ckpt = load_checkpoint(cfg.checkpoint)
    data = load_dataset(ckpt.dataset, cfg.data_root, input_size=ckpt.input_size)
    images = _images(data, cfg)
    rows = []
    for state, model in (("trained", ckpt.build_model()), ("init", ckpt.untrained_model())):
        rows += quality_rows(model, *images, cfg, state)
    df = pd.DataFrame(rows)
    if cfg.out is not None:
        atomic_write_text(Path(cfg.out) / "gradient.csv", df.to_csv(index=False))
    return df


def gradient_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Median over layers of cos_activity: rows (state, rule, k), columns P.

    VNC rows have k = -1 (all n units of each layer).
    """
    k = df["k"].where(df["rule"] == "nmnc", -1)
    return df.assign(k=k).groupby(["state", "rule", "k", "P"])["cos_activity"].median().unstack("P")


def _images(data, cfg: GradientConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Test images and labels to estimate gradients on, and training images for the manifold."""
    g = torch.Generator().manual_seed(0)
    test_idx = torch.randperm(len(data.test), generator=g)[: cfg.batch_size]
    train_idx = torch.randperm(len(data.train), generator=g)[: cfg.manifold_images]
    x, y = data.test.batch(test_idx, False, None)
    xm, _ = data.train.batch(train_idx, False, None)
    return x, y, xm


def activity(model, x: torch.Tensor, chunk: int = CHUNK) -> tuple[dict, dict]:
    """Each hidden layer's input and output activity for images ``x``, recorded by taps."""
    acts = activities(model, x, batch=chunk)
    names = model.hidden_layers
    ins = {name: (x if i == 0 else acts[names[i - 1]]) for i, name in enumerate(names)}
    return ins, acts


def nmnc_rule(model, manifold_acts: dict, k: int, cfg: GradientConfig) -> Rule:
    """An NMNC rule whose manifolds (its own estimators) are fitted on ``manifold_acts``."""
    rule = build_rule(
        "nmnc",
        model,
        P=cfg.P[0],
        k=k,
        centered=cfg.centered,
        buffer=cfg.manifold_images,
        **_noise_settings(cfg),
    )
    for name, m in rule.manifolds.items():
        m.observe(manifold_acts[name], 0)
    return rule


def quality_rows(
    model, x: torch.Tensor, y: torch.Tensor, xm: torch.Tensor, cfg: GradientConfig, state: str
) -> list[dict]:
    """Table rows for one model: every hidden layer, VNC at each P and NMNC at each (k, P)."""
    model.eval()  # frozen BatchNorm: the Jacobian the rules estimate
    ins, acts = activity(model, x, chunk=len(x))
    with torch.no_grad():
        logits = model.stage(model.stage_names[-1])(acts[model.hidden_layers[-1]])
    e = output_error(logits, y)  # (B, n_o) output error
    low = None  # the clean pass under bf16 autocast: each layer's activity and the output error
    if cfg.autocast == "bf16":
        with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16):
            acts16, logits16 = model.walk(x)
        low = {"acts": acts16, "e": output_error(logits16, y)}
    manifold_acts = activity(model, xm)[1]
    nmnc = {k: nmnc_rule(model, manifold_acts, k, cfg) for k in cfg.k}
    del manifold_acts
    work = [(name, P, k) for name in model.hidden_layers for P in cfg.P for k in (None, *cfg.k)]
    rows = []
    bar = tqdm(work, desc=f"gradient quality ({state})", leave=False, disable=not cfg.progress)
    for name, P, k in bar:
        gen = torch.Generator().manual_seed(P * 1000 + (k or 0))
        if k is None:  # VNC: white noise on all n units
            rule, manifold = _vnc_rule(model, P, cfg), None
        else:
            rule, manifold = _drawing(nmnc[k], P), nmnc[k].manifolds[name]
        row = _row(model, rule, manifold, name, ins[name], acts[name], e, y, gen, low)
        rows.append({"state": state, **row})
    return rows


def _row(
    model,
    rule: Rule,
    manifold: ManifoldEstimator | None,
    name: str,
    inp: torch.Tensor,
    h: torch.Tensor,
    e: torch.Tensor,
    y: torch.Tensor,
    gen: torch.Generator,
    low: dict | None = None,
) -> dict:
    """Estimate layer ``name``'s activity gradient with ``rule``'s noise and score it."""
    P, n = rule.settings.P, math.prod(h.shape[1:])
    k = n if manifold is None else manifold.k
    true = _activity_grad(model, name, h, y)
    xi, var = rule.noise(name, h, gen)  # (P, B, *shape) perturbations, per-direction variance
    est = correlate(lambda z: model.forward_from(name, z), h, xi, var, e)
    extra = {}
    if low is not None:  # as the rules do under autocast: bf16 clean pass, fp32 perturbed passes
        with torch.autocast(h.device.type, enabled=False):
            h16, e16 = low["acts"][name].float(), low["e"].float()
            est16 = correlate(lambda z: model.forward_from(name, z), h16, xi, var, e16)
        extra["cos_fp32"] = (
            F.cosine_similarity(est16.flatten(1), est.flatten(1), dim=1).mean().item()
        )
    alpha = 1.0 if manifold is None else _on_manifold(manifold.project(true), true)
    cos_a = F.cosine_similarity(est.flatten(1), true.flatten(1), dim=1).mean().item()
    w_est, w_true = _weight_grad(model, name, inp, est), _weight_grad(model, name, inp, true)
    cos_w = F.cosine_similarity(w_est, w_true, dim=0).item()
    # E cos^2 = alpha P/(P+k-1) (VNC: alpha = 1, k = n)
    theory = math.sqrt(alpha * P / (P + k - 1))
    # perturbations VNC would need for this cosine, from E cos^2 = P/(P+n-1)
    vnc_P = cos_a**2 * (n - 1) / max(1 - cos_a**2, 1e-12) if cos_a > 0 else 0.0
    return {
        "rule": rule.name,
        "layer": name,
        "n": n,
        "k": k,
        "P": P,
        "alpha": alpha,
        "chance": k / n,
        "cos_activity": cos_a,
        "cos_weight": cos_w,
        "rms_cos_theory": theory,
        "vnc_P_equivalent": vnc_P,
        **extra,
    }


def _noise_settings(cfg: GradientConfig) -> dict:
    return {} if cfg.sigma is None else {"sigma": cfg.sigma}


def _vnc_rule(model, P: int, cfg: GradientConfig) -> Rule:
    return build_rule("vnc", model, P=P, **_noise_settings(cfg))


def _drawing(rule: Rule, P: int) -> Rule:
    """``rule`` set to draw P perturbations per example; its fitted manifolds are kept."""
    rule.settings = dataclasses.replace(rule.settings, P=P)
    return rule


def _on_manifold(proj: torch.Tensor, g: torch.Tensor) -> float:
    """alpha = |Pi g|^2 / |g|^2, averaged over examples."""
    on = (proj.flatten(1) ** 2).sum(1)
    return float((on / (g.flatten(1) ** 2).sum(1).clamp_min(1e-30)).mean())


def _activity_grad(model, name: str, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """True gradient of the batch-mean cross-entropy with respect to layer ``name``'s activity."""
    h = h.clone().requires_grad_()
    loss = F.cross_entropy(model.forward_from(name, h), y)
    return torch.autograd.grad(loss, h)[0]


def _weight_grad(model, name: str, inp: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The layer's own parameter gradient (flattened) for output gradient ``g``."""
    stage = model.stage(name)
    params = [p for p in stage.parameters() if p.requires_grad]
    out = stage(inp)
    return torch.cat([t.flatten() for t in torch.autograd.grad(out, params, g)])
