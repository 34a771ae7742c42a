"""Gradient quality: cosine between noise-correlation estimates and true (backprop) gradients.

    python -m nmnc.bench gradient --checkpoint PATH [--data-root D] --out FILE.csv

For the checkpoint and the same architecture at initialisation, for every hidden layer, VNC and
NMNC estimates at P in {1, 4, 16, 64} and k in {8, 32, 128}: cosine with the true gradient in
activity space (per example, averaged) and in weight space (the layer's own parameter gradient for
the batch), alpha (share of the true gradient on the manifold) and chance k/n.
"""
from __future__ import annotations

import math

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checkpoint import load_checkpoint, model_from_checkpoint
from ..data import load_dataset
from ..io import atomic_write_text
from ..engine.manifold import Manifold
from ..models import MODELS, build_model
from ..engine.perturb import correlate, output_error


def add_parser(sub):
    g = sub.add_parser("gradient", help="gradient-quality table for a checkpoint")
    g.add_argument("--checkpoint", required=True)
    g.add_argument("--data-root")
    g.add_argument("--out", required=True, help="CSV file for the table")
    g.add_argument("--P", default="1,4,16,64")
    g.add_argument("--k", default="8,32,128")
    g.add_argument("--batch", type=int, default=32, help="test images whose gradients are estimated")
    g.add_argument("--manifold-images", type=int, default=1024, help="training images for the PCA manifold")
    g.add_argument("--sigma", type=float, default=0.01)
    g.add_argument("--uncentered", action="store_true", help="manifold from the uncentred second moment")
    g.set_defaults(func=run)


def _grads(model, name, x_acts, y):
    h = x_acts.clone().requires_grad_()
    loss = F.cross_entropy(model.forward_from(name, h), y)
    return torch.autograd.grad(loss, h)[0]


def _weight_grad(model, name, inp, g):
    stage = model.stage(name)
    params = [p for p in stage.parameters() if p.requires_grad]
    out = stage(inp)
    return torch.cat([t.flatten() for t in torch.autograd.grad(out, params, g)])


def table(model, data, Ps, ks, batch, manifold_images, sigma, state: str, centered: bool = True) -> list[dict]:
    model.eval()  # frozen BatchNorm: the Jacobian the rules estimate
    g = torch.Generator().manual_seed(0)
    x, y = data.test.batch(torch.randperm(len(data.test), generator=g)[:batch], False, None)
    xm, _ = data.train.batch(torch.randperm(len(data.train), generator=g)[:manifold_images], False, None)
    rows = []
    with torch.no_grad():
        ins, acts, h = {}, {}, x
        for name in model.hidden_layers:
            ins[name] = h
            h = model.stage(name)(h)
            acts[name] = h
        e = output_error(model.stage(model.stage_names[-1])(h), y)
        macts, hm = {}, xm
        for name in model.hidden_layers:
            hm = torch.cat([model.stage(name)(c) for c in hm.split(256)])
            macts[name] = hm
    work = [(n, r, P, k) for n in model.hidden_layers for P in Ps for r, k in [("vnc", None)] + [("nmnc", k) for k in ks]]
    manifolds = {}
    for name, rule, P, k in tqdm(work, desc=f"gradient bench ({state})", leave=False):
        h = acts[name]
        n = math.prod(h.shape[1:])
        true = _grads(model, name, h, y)
        gen = torch.Generator().manual_seed(P * 1000 + (k or 0))
        if rule == "vnc":
            xi, var, alpha = sigma * torch.randn(P, *h.shape, generator=gen), sigma ** 2, 1.0
        else:
            key = (name, k)
            if key not in manifolds:
                m = Manifold(tuple(h.shape[1:]), k=min(k, n), buffer=manifold_images, centered=centered)
                m.observe(macts[name], 0)
                manifolds[key] = m
            m = manifolds[key]
            xi, var = m.sample(P, len(h), sigma, gen), sigma ** 2
            proj = m.project(true)
            alpha = float(((proj.flatten(1) ** 2).sum(1) / (true.flatten(1) ** 2).sum(1).clamp_min(1e-30)).mean())
        est = correlate(lambda z, name=name: model.forward_from(name, z), h, xi, var, e)
        cos_a = F.cosine_similarity(est.flatten(1), true.flatten(1), dim=1).mean().item()
        cos_w = F.cosine_similarity(_weight_grad(model, name, ins[name], est), _weight_grad(model, name, ins[name], true), dim=0).item()
        kk = n if rule == "vnc" else min(k, n)
        theory = math.sqrt(P / (P + n - 1)) if rule == "vnc" else math.sqrt(alpha * P / (P + kk - 1))
        rows.append({"state": state, "rule": rule, "layer": name, "n": n, "k": kk, "P": P, "alpha": alpha,
                     "chance": kk / n, "cos_activity": cos_a, "cos_weight": cos_w, "rms_cos_theory": theory,
                     # perturbations VNC would need for this cosine, from E cos^2 = P/(P+n-1)
                     "vnc_P_equivalent": cos_a ** 2 * (n - 1) / max(1 - cos_a ** 2, 1e-12) if cos_a > 0 else 0.0})
    return rows


def run(args) -> None:
    ckpt = load_checkpoint(args.checkpoint)
    trained = model_from_checkpoint(ckpt)
    arch = ckpt["model"]["name"]
    torch.manual_seed(ckpt["config"]["seed"])
    init = build_model(arch, MODELS.settings(arch, ckpt["model"]["settings"])).eval()
    data = load_dataset(ckpt["data"]["dataset"], args.data_root, input_size=ckpt["data"]["input_size"])
    Ps = [int(p) for p in args.P.split(",")]
    ks = [int(k) for k in args.k.split(",")]
    rows = table(trained, data, Ps, ks, args.batch, args.manifold_images, args.sigma, "trained", not args.uncentered)
    rows += table(init, data, Ps, ks, args.batch, args.manifold_images, args.sigma, "init", not args.uncentered)
    df = pd.DataFrame(rows)
    atomic_write_text(args.out, df.to_csv(index=False))
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print()
        df["k_"] = df["k"].where(df["rule"] == "nmnc", -1)  # VNC: k = n of each layer
        summary = df.groupby(["state", "rule", "k_", "P"])["cos_activity"].median().unstack("P")
        print("median over layers of cos_activity (rows: state, rule, k; k=-1 means all n units)")
        print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
