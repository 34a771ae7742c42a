"""Manifold estimators against each other, and what they hold in memory.

    rows = estimator_agreement(EstimatorConfig(checkpoint="runs/cnn_bp"))  # sketch vs batch PCA
    rows = manifold_memory("resnet18", ks=(8, 16, 32))                     # bytes per layer

Agreement: every estimator in ``estimators`` takes in the same stream of training-image activity
(``stream_batches`` batches of ``batch_size``, as in training), then, per hidden layer: the
subspace overlap with the reference estimator (mean squared cosine of the principal angles between
the two top-k subspaces: 1 = the same subspace, k/n = chance), alpha (share of the true gradient on
the subspace) and the RMS cosine of NMNC's estimate (white noise, P perturbations) with the true
gradient on test images, with the same noise for every estimator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..checkpoint import load_checkpoint
from ..data import load_dataset
from ..engine.manifold import make_manifold, pick_estimator
from ..errors import NmncError
from ..models import MODELS, build_model
from ..rules import build_rule
from .gradient import _on_manifold, activity, clean_batch, cosines, true_gradients


@dataclass(frozen=True)
class EstimatorConfig:
    """What :func:`estimator_agreement` compares."""

    checkpoint: str
    data_root: str | None = None
    k: int = 32
    estimators: tuple[str, ...] = ("pca", "fd")  # the first is the reference
    stream_batches: int = 32  # training batches each estimator takes in
    batch_size: int = 64
    buffer: int = 1024  # batch PCA's buffer (the rule's default)
    P: int = 16
    test_images: int = 32


def estimator_agreement(cfg: EstimatorConfig) -> list[dict]:
    """One row per (estimator, hidden layer): overlap with the reference, alpha, RMS cosine."""
    if len(cfg.estimators) < 2:
        raise NmncError("estimators: name a reference and at least one estimator to compare")
    ckpt = load_checkpoint(cfg.checkpoint)
    ckpt.require_images("the estimator comparison")
    model = ckpt.build_model().eval()
    data = load_dataset(ckpt.dataset, cfg.data_root, input_size=ckpt.input_size)
    g = torch.Generator().manual_seed(0)
    stream = torch.randperm(len(data.train), generator=g)[: cfg.stream_batches * cfg.batch_size]
    rules = {
        name: build_rule(
            "nmnc", model, P=cfg.P, k=cfg.k, estimator=name, noise_shape="white", buffer=cfg.buffer
        )
        for name in cfg.estimators
    }
    for t, start in enumerate(range(0, len(stream), cfg.batch_size)):
        x, _ = data.train.batch(stream[start : start + cfg.batch_size], False, None)
        acts = activity(model, x)[1]
        for rule in rules.values():
            for name, m in rule.manifolds.items():
                m.observe(acts[name], t)
    for rule in rules.values():
        for m in rule.manifolds.values():
            m.refresh_now()  # every estimator's basis from the whole stream
    test = torch.randperm(len(data.test), generator=g)[: cfg.test_images]
    batch = clean_batch(model, *data.test.batch(test, False, None))
    true = true_gradients(model, batch)
    ref = rules[cfg.estimators[0]]
    rows = []
    for est, rule in rules.items():
        g_hat = rule.estimate(
            batch.acts, batch.e, batch.y, torch.Generator().manual_seed(1), context=batch.context
        )
        for name, m in rule.manifolds.items():
            U0 = ref.manifolds[name].U
            rows.append(
                {
                    "estimator": est,
                    "layer": name,
                    "n": m.dim,
                    "k": m.k,
                    "overlap": float((torch.linalg.svdvals(U0.T @ m.U) ** 2).mean()),
                    "chance": m.k / m.dim,
                    "alpha": _on_manifold(m.project(true[name]), true[name]),
                    "rms_cos": float((cosines(g_hat[name], true[name]) ** 2).mean().sqrt()),
                    "state_mb": m.state_bytes() / 2**20,
                }
            )
    return rows


def manifold_memory(model: str, ks=(8, 16, 32), buffer: int = 1024, budget_mb: float = 96.0):
    """Per hidden layer of ``model`` (default settings) and k: the estimator ``auto`` picks and the
    bytes its state holds in a checkpoint once warm (batch PCA: a full buffer), against what batch
    PCA's buffer alone would take."""
    net = build_model(model, MODELS.settings(model, {}))
    rows = []
    for name, shape in net.layer_shapes().items():
        n = math.prod(shape)
        for k in ks:
            kind = pick_estimator("auto", n, buffer, budget_mb)
            m = make_manifold(shape, kind, k=min(k, n), buffer=buffer, manifold_mb=budget_mb)
            rows_in = torch.randn(max(2 * m.k_cap, 1), n, generator=torch.Generator())
            m.observe(rows_in, 0)  # a sketch is full after 2k rows
            held = m.state_bytes()
            if kind == "pca":  # the buffer once full: buffer rows, not the rows seen so far
                held += (buffer - len(m.state_dict()["buf"])) * n * 4
            rows.append(
                {
                    "model": model,
                    "layer": name,
                    "n": n,
                    "k": k,
                    "estimator": kind,
                    "state_mb": held / 2**20,
                    "pca_buffer_mb": buffer * n * 4 / 2**20,
                }
            )
    return rows


__all__ = ["EstimatorConfig", "estimator_agreement", "manifold_memory"]
