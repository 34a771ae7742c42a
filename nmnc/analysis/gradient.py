"""Gradient quality: cosine between noise-correlation estimates and true (backprop) gradients.

    df = gradient_quality(GradientConfig(checkpoint="runs/cnn_bp", out="reports/cnn_bp"))
    print(gradient_summary(df))

For the checkpoint and the same architecture at initialisation, for every hidden layer and every
rule, feedback and P (and k for NMNC): the cosine with the true gradient in activity space per
example, reported as its mean (``cos_activity``) and root mean square (``rms_cos``), and in weight
space (the layer's own parameter gradient for the batch), alpha (share of the true gradient on
the manifold), chance k/n and the theory ``rms_cos_theory = sqrt(E[cos^2])``, which ``rms_cos``
is to be read against (a mean cosine reads below an RMS one even for an estimator that matches
the theory exactly).

The estimates are the rules' own (``rule.estimate``, as in training), with the rules' default
sigma (the training sigma) unless one is given, and each NMNC manifold is the rule's own estimator
fitted on a sample of training images. Rules:

- ``vnc``: energy-matched to NMNC (per-unit std sigma sqrt(32/n), the rule's default);
- ``vnc-unmatched``: per-unit std sigma;
- ``nmnc`` at each k, with white noise in the subspace (column ``noise_shape=white``: the Beta
  theory holds) and with noise shaped by the PCA variances (``pca``, the rule's default: the
  estimate is biased inside the subspace, so its ``rms_cos_theory`` is NaN);
- ``readout``: the read-out-only control. It estimates no hidden-layer gradient (its hidden
  layers stay at initialisation), so its estimate is zero: cosines 0, theory 0.

Feedback: ``example`` (each example's own perturbations) and ``amortised`` (the rule's averaged
Jacobian J_bar, built over ``amortise_batches`` batches of training images with the rule's own
moving average and then applied to the test batch, ``g_hat = J_bar^T e``; it excludes the test
batch). Beta theory does not cover the amortised estimate: its ``rms_cos_theory`` is NaN.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from ..checkpoint import load_checkpoint
from ..data import load_dataset
from ..engine.perturb import output_error
from ..engine.taps import activities
from ..errors import NmncError, UnknownNameError
from ..io import atomic_write_text
from ..models._base import INPUT
from ..progress import tqdm
from ..rules import Rule, build_rule

CHUNK = 256  # manifold images per forward pass (memory bound only)
AUTOCAST = ("none", "bf16")
FEEDBACK = ("example", "amortised")
SHAPES = ("white", "pca")  # NMNC noise inside the subspace: white (Beta theory holds) or PCA-shaped
RULE_NAMES = ("vnc", "vnc-unmatched", "nmnc", "readout")  # rules the table can hold
# the read-out-only control's row: it estimates no hidden-layer gradient, so every cosine is 0
NO_ESTIMATE = {
    "alpha": 0.0,
    "chance": 0.0,
    "cos_activity": 0.0,
    "rms_cos": 0.0,
    "rms_cos_theory": 0.0,
    "cos_weight": 0.0,
}


@dataclass(frozen=True)
class GradientConfig:
    """What :func:`gradient_quality` measures, and where the table goes."""

    checkpoint: str  # checkpoint file or run folder
    out: str | None = None  # folder for gradient.csv; None = do not write
    data_root: str | None = None
    P: tuple[int, ...] = (1, 4, 16, 64)  # perturbations per example
    k: tuple[int, ...] = (8, 32, 128)  # NMNC manifold dimensions
    rules: tuple[str, ...] = RULE_NAMES  # of vnc, vnc-unmatched, nmnc, readout
    feedback: tuple[str, ...] = FEEDBACK  # 'example' and/or 'amortised' (noise rules only)
    noise_shapes: tuple[str, ...] = SHAPES  # NMNC's noise in the subspace: 'white' and/or 'pca'
    amortise_batches: int = 4  # amortised: batches of batch_size training images J_bar averages
    batch_size: int = 32  # test images whose gradients are estimated
    manifold_images: int = 1024  # training images the NMNC manifold is fitted on
    sigma: float | None = None  # noise std (activity units); None = the rules' own default
    centered: bool = True  # manifold from the centred covariance (False: uncentred second moment)
    autocast: str = "none"  # 'bf16': also run the clean pass under bf16 autocast -> cos_fp32
    progress: bool = True

    def __post_init__(self):
        for key in ("P", "k", "rules", "feedback", "noise_shapes"):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        for key in ("P", "k"):
            values = getattr(self, key)
            if not values or any(int(v) != v or v < 1 for v in values):
                raise NmncError(
                    f"{key} must be one or more whole numbers of at least 1, got {list(values)}"
                )
        for key, allowed in (
            ("rules", RULE_NAMES),
            ("feedback", FEEDBACK),
            ("noise_shapes", SHAPES),
        ):
            values = getattr(self, key)
            if not values:
                raise NmncError(f"{key} must name at least one of {', '.join(allowed)}")
            for value in values:
                if value not in allowed:
                    raise UnknownNameError(key.rstrip("s"), value, allowed)
        for key in ("batch_size", "manifold_images", "amortise_batches"):
            if getattr(self, key) < 1:
                raise NmncError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.autocast not in AUTOCAST:
            raise UnknownNameError("autocast", self.autocast, AUTOCAST)
        if self.sigma is not None and not self.sigma > 0:
            raise NmncError(
                f"sigma must be positive (or None for the rules' default), got {self.sigma}"
            )


@dataclass
class Batch:
    """A clean batch: input, labels, every hidden layer's activity and the output error."""

    x: torch.Tensor
    y: torch.Tensor
    acts: dict[str, torch.Tensor]
    e: torch.Tensor  # (B, n_o) dL/dlogits of the batch-mean cross-entropy

    @property
    def context(self) -> dict[str, torch.Tensor]:
        """What ``forward_from`` needs for skip connections: the clean activities and input."""
        return {INPUT: self.x, **self.acts}


def clean_batch(model, x: torch.Tensor, y: torch.Tensor, acts: dict | None = None) -> Batch:
    """The clean pass of ``model`` (in its current mode) on ``x``; ``acts`` if already known."""
    with torch.no_grad():
        if acts is None:
            acts, logits = model.walk(x)
        else:
            last = model.hidden_layers[-1]
            logits = model.forward_from(last, acts[last], {INPUT: x, **acts})
    return Batch(x, y, acts, output_error(logits, y))


def gradient_quality(cfg: GradientConfig) -> pd.DataFrame:
    """One row per (state, rule, feedback, layer, k, P): the checkpoint and its architecture at
    init.

    Columns: state, rule, noise_shape, feedback, layer, n, k, P, alpha, chance, cos_activity,
    rms_cos, rms_cos_theory, cos_weight, vnc_P_equivalent; with ``autocast='bf16'`` also cos_fp32,
    the cosine of the estimate made as the rules make it when the clean pass runs under bf16
    (perturbed passes in fp32) with the fp32 estimate from the same noise. Written to
    ``<cfg.out>/gradient.csv``.
    """
    ckpt = load_checkpoint(cfg.checkpoint)
    ckpt.require_images("the gradient analysis of image models")
    data = load_dataset(ckpt.dataset, cfg.data_root, input_size=ckpt.input_size)
    images = sample_images(data, cfg.batch_size, cfg.manifold_images)
    rows = []
    for state, model in (("trained", ckpt.build_model()), ("init", ckpt.untrained_model())):
        rows += quality_rows(model, *images, cfg, state)
    df = pd.DataFrame(rows)
    if cfg.out is not None:
        atomic_write_text(Path(cfg.out) / "gradient.csv", df.to_csv(index=False))
    return df


def gradient_summary(df: pd.DataFrame, value: str = "rms_cos") -> pd.DataFrame:
    """Median over layers of ``value`` (rms_cos, rms_cos_theory, cos_activity, ...): rows
    (state, rule, noise_shape, feedback, k), columns P.

    Rules other than NMNC have k = -1 (VNC: all n units of each layer; read-out: none).
    """
    k = df["k"].where(df["rule"] == "nmnc", -1)
    keys = ["state", "rule", "noise_shape", "feedback", "k", "P"]
    return df.assign(k=k).groupby(keys, sort=False)[value].median().unstack("P")


def sample_images(data, test_images: int, train_images: int):
    """``test_images`` test images and labels to estimate gradients on, and ``train_images``
    training images and labels for the manifold and the amortised feedback (fixed seed)."""
    g = torch.Generator().manual_seed(0)
    test_idx = torch.randperm(len(data.test), generator=g)[:test_images]
    train_idx = torch.randperm(len(data.train), generator=g)[:train_images]
    x, y = data.test.batch(test_idx, False, None)
    xm, ym = data.train.batch(train_idx, False, None)
    return x, y, xm, ym


def activity(model, x: torch.Tensor, chunk: int = CHUNK) -> tuple[dict, dict]:
    """Each hidden layer's inputs (a tuple: what its stage reads) and output activity for images
    ``x``, recorded by taps."""
    acts = activities(model, x, batch=chunk)
    ins = {name: model.stage_inputs(name, {INPUT: x, **acts}) for name in model.hidden_layers}
    return ins, acts


def nmnc_rule(
    model, manifold_acts: dict, k: int, cfg: GradientConfig, noise_shape: str = "white"
) -> Rule:
    """An NMNC rule whose manifolds (its own estimators) are fitted on ``manifold_acts``."""
    rule = build_rule(
        "nmnc",
        model,
        P=cfg.P[0],
        k=k,
        noise_shape=noise_shape,
        centered=cfg.centered,
        buffer=cfg.manifold_images,
        **_noise_settings(cfg),
    )
    for name, m in rule.manifolds.items():
        m.observe(manifold_acts[name], 0)
    return rule


def estimate(rule: Rule, batch: Batch, gen: torch.Generator, warm: list[Batch] = ()) -> dict:
    """The rule's activity-gradient estimates for ``batch``, as the rule makes them in training.

    With amortised feedback the rule's averaged Jacobian J_bar is first built from the ``warm``
    batches (its own moving average), then applied to this batch: ``g_hat = J_bar^T e``.
    """
    if getattr(rule.settings, "feedback", "example") == "amortised":
        if not warm:
            raise NmncError("amortised feedback needs at least one warm-up batch")
        for b in warm:
            _rule_estimate(rule, b, gen)
        return {
            name: (batch.e @ fb.average().to(batch.e)).view_as(batch.acts[name])
            for name, fb in rule.feedback.items()
        }
    return _rule_estimate(rule, batch, gen)


def _rule_estimate(rule: Rule, batch: Batch, gen: torch.Generator) -> dict:
    return rule.estimate(batch.acts, batch.e, batch.y, gen, context=batch.context)


def true_gradients(model, batch: Batch) -> dict[str, torch.Tensor]:
    """True gradient of the batch-mean cross-entropy with respect to every hidden activity."""
    out = {}
    for name, h in batch.acts.items():
        h = h.detach().clone().requires_grad_()
        loss = F.cross_entropy(model.forward_from(name, h, batch.context), batch.y)
        out[name] = torch.autograd.grad(loss, h)[0]
    return out


def cosines(est: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Per-example cosine (B,) between activity-space vectors (B, *shape)."""
    return F.cosine_similarity(est.flatten(1), true.flatten(1), dim=1)


def quality_rows(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    xm: torch.Tensor,
    ym: torch.Tensor,
    cfg: GradientConfig,
    state: str,
) -> list[dict]:
    """Table rows for one model: every hidden layer, each rule, feedback and P (and k for NMNC)."""
    model.eval()  # frozen BatchNorm: the Jacobian the rules estimate
    batch = clean_batch(model, x, y)
    true = true_gradients(model, batch)
    low = None  # the clean pass under bf16 autocast
    if cfg.autocast == "bf16":
        with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16):
            acts16, logits16 = model.walk(x)
        low = Batch(x, y, acts16, output_error(logits16, y))
    manifold_acts = activity(model, xm)[1]
    fit = "nmnc" in cfg.rules
    shapes = cfg.noise_shapes if fit else ()
    nmnc = {
        (k, shape): nmnc_rule(model, manifold_acts, k, cfg, shape)
        for k in cfg.k
        for shape in shapes
    }
    warm = []
    if "amortised" in cfg.feedback:
        warm = warm_batches(model, xm, ym, manifold_acts, cfg.batch_size, cfg.amortise_batches)
    del manifold_acts
    ins = {name: model.stage_inputs(name, batch.context) for name in model.hidden_layers}
    w_true = {name: _weight_grad(model, name, ins[name], true[name]) for name in true}
    work = [
        (rule, fb, P, k, shape)
        for rule in cfg.rules
        for shape in (cfg.noise_shapes if rule == "nmnc" else (None,))
        for fb in (("none",) if rule == "readout" else cfg.feedback)
        for P in cfg.P
        for k in (cfg.k if rule == "nmnc" else (None,))
    ]
    rows = []
    bar = tqdm(work, desc=f"gradient quality ({state})", leave=False, disable=not cfg.progress)
    for rule_name, fb, P, k, shape in bar:
        if rule_name == "readout":
            rows += [{"state": state, **_readout_row(name, h, P)} for name, h in batch.acts.items()]
            continue
        rule = _rule(model, rule_name, P, fb, cfg, nmnc.get((k, shape)))
        seed = P * 1000 + (k or 0)
        est = estimate(rule, batch, torch.Generator().manual_seed(seed), warm)
        est16 = None
        if low is not None:  # as the rules do under autocast: bf16 clean pass, fp32 perturbed
            rule16 = _rule(model, rule_name, P, fb, cfg, nmnc.get((k, shape)))
            warm16 = [_low(model, b) for b in warm] if fb == "amortised" else []
            est16 = estimate(rule16, low, torch.Generator().manual_seed(seed), warm16)
        for name in rule.layers:
            row = _row(model, rule, name, est[name], true[name], w_true[name], ins[name])
            if est16 is not None:
                row["cos_fp32"] = cosines(est16[name].float(), est[name]).mean().item()
            rows.append({"state": state, **row})
    return rows


def _row(model, rule: Rule, name: str, est, true, w_true, inputs) -> dict:
    """Score one layer's estimate against the true gradient."""
    s, h_shape = rule.settings, true.shape[1:]
    P, n = s.P, math.prod(h_shape)
    manifold = getattr(rule, "manifolds", {}).get(name)
    k = n if manifold is None else manifold.k
    alpha = 1.0 if manifold is None else _on_manifold(manifold.project(true), true)
    cos = cosines(est, true)
    cos_a, rms = cos.mean().item(), (cos**2).mean().sqrt().item()
    cos_w = F.cosine_similarity(_weight_grad(model, name, inputs, est), w_true, dim=0).item()
    white = getattr(s, "noise_shape", "white") == "white"
    # E cos^2 = alpha P/(P+k-1) (VNC: alpha = 1, k = n), for white per-example estimates
    theory = math.sqrt(alpha * P / (P + k - 1)) if s.feedback == "example" and white else math.nan
    # perturbations VNC would need for this RMS cosine, from E cos^2 = P/(P+n-1)
    vnc_P = rms**2 * (n - 1) / max(1 - rms**2, 1e-12)
    return {
        "rule": rule.name,
        "noise_shape": getattr(s, "noise_shape", "white"),
        "feedback": s.feedback,
        "layer": name,
        "n": n,
        "k": k,
        "P": P,
        "alpha": alpha,
        "chance": k / n,
        "cos_activity": cos_a,
        "rms_cos": rms,
        "rms_cos_theory": theory,
        "cos_weight": cos_w,
        "vnc_P_equivalent": vnc_P,
    }


def _readout_row(name: str, h: torch.Tensor, P: int) -> dict:
    """The read-out-only control: no hidden-layer estimate (zero), so every cosine is 0."""
    n = math.prod(h.shape[1:])
    return {
        "rule": "readout",
        "noise_shape": "none",
        "feedback": "none",
        "layer": name,
        "n": n,
        "k": 0,
        "P": P,
        **NO_ESTIMATE,
        "vnc_P_equivalent": 0.0,
    }


def warm_batches(model, xm, ym, acts: dict, batch_size: int, count: int) -> list[Batch]:
    """The first ``count`` batches of training images ``xm`` (activities ``acts`` already
    known): what amortised feedback is built on."""
    out = []
    for i in range(0, min(len(xm), count * batch_size), batch_size):
        part = {name: h[i : i + batch_size] for name, h in acts.items()}
        out.append(clean_batch(model, xm[i : i + batch_size], ym[i : i + batch_size], part))
    return out


def _low(model, batch: Batch) -> Batch:
    """``batch``'s clean pass under bf16 autocast."""
    with torch.no_grad(), torch.autocast(batch.x.device.type, dtype=torch.bfloat16):
        acts, logits = model.walk(batch.x)
    return Batch(batch.x, batch.y, acts, output_error(logits, batch.y))


def _noise_settings(cfg: GradientConfig) -> dict:
    return {} if cfg.sigma is None else {"sigma": cfg.sigma}


def _rule(model, name: str, P: int, feedback: str, cfg: GradientConfig, fitted=None) -> Rule:
    """A fresh rule ``name`` drawing P perturbations with ``feedback``; NMNC takes the manifolds
    already fitted in ``fitted``."""
    if fitted is None:
        return build_rule(name, model, P=P, feedback=feedback, **_noise_settings(cfg))
    settings = dataclasses.replace(fitted.settings, P=P, feedback=feedback)
    rule = build_rule(name, model, settings)
    rule.manifolds = fitted.manifolds
    return rule


def _on_manifold(proj: torch.Tensor, g: torch.Tensor) -> float:
    """alpha = |Pi g|^2 / |g|^2, averaged over examples."""
    on = (proj.flatten(1) ** 2).sum(1)
    return float((on / (g.flatten(1) ** 2).sum(1).clamp_min(1e-30)).mean())


def _weight_grad(model, name: str, inputs: tuple, g: torch.Tensor) -> torch.Tensor:
    """The layer's own parameter gradient (flattened) for output gradient ``g``."""
    params = [p for p in model.stage(name).parameters() if p.requires_grad]
    out = model.stage(name)(*inputs)
    return torch.cat([t.flatten() for t in torch.autograd.grad(out, params, g.to(out.dtype))])
