"""The recurrent experiment's tables, figures and report section (``section.json``): learning
curves against sequences and perturbations, gradient quality against P, alignment against k."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from nmnc.io import atomic_write_text

from .recurrent import RULE_ORDER


def figures(runs: list[Path], grad: pd.DataFrame, align: pd.DataFrame, out: Path) -> list[str]:
    """Learning curves, gradient quality against P and alignment against k (PNG names)."""
    from nmnc.analysis.efficiency import read_run
    from nmnc.plots import learning_curves, save, setup

    sns = setup()
    import matplotlib.pyplot as plt

    logs = pd.concat([read_run(r) for r in runs], ignore_index=True)
    rules = [r for r in RULE_ORDER if r in set(logs.rule)]
    evals = logs.dropna(subset=["test_acc"])
    fig, axes = learning_curves(evals, "test_acc", rules, ("ci", 95), "test accuracy")
    axes[0].set_title("test accuracy vs sequences seen")
    axes[1].set_title("test accuracy vs perturbations spent")
    names = [p.name for p in save(fig, out, "rnn_learning") if p.suffix == ".png"]

    trained = grad[(grad.state == "trained") & (grad.rule != "readout")]
    label = trained.rule + trained.apply(
        lambda r: f" k={r.k} {r.noise_shape}" if r.rule == "nmnc" else f" (k={r.match_k} energy)",
        axis=1,
    )
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, time in zip(axes, ("all", "step")):
        part = trained.assign(estimator=label)[trained.time == time]
        if len(part):
            sns.lineplot(data=part, x="P", y="rms_cos", hue="estimator", marker="o", ax=ax)
            theory = part.dropna(subset=["rms_cos_theory"])
            for _, g in theory.groupby("estimator"):
                ax.plot(g.P, g.rms_cos_theory, ls="--", color="grey", lw=0.8)
            ax.set_xscale("log", base=2)
        ax.set_title(f"time={time} (dashed: theory)")
        ax.set_ylabel("RMS cosine with BPTT")
    names += [p.name for p in save(fig, out, "rnn_gradient") if p.suffix == ".png"]

    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for state, g in align.groupby("state"):
        ax.plot(g.k, g.alpha_jacobian, marker="o", label=f"{state}: Jacobian")
        ax.plot(g.k, g.alpha_gradient, marker="s", ls=":", label=f"{state}: gradient")
    first = align[align.state == align.state.iloc[0]]
    ax.plot(first.k, first.chance, color="grey", ls="--", label="chance k/n")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="k", ylabel="alpha (share on the state manifold)")
    ax.legend(fontsize=7)
    names += [p.name for p in save(fig, out, "rnn_alignment") if p.suffix == ".png"]
    return names


def gradient_summary(grad: pd.DataFrame) -> pd.DataFrame:
    """RMS cosine with BPTT (measured / theory) by state, estimator and time mode, columns P."""
    g = grad[grad.rule != "readout"].copy()
    g["estimator"] = g.rule + g.apply(
        lambda r: (
            f" (k={r.k}, {r.noise_shape})"
            if r.rule == "nmnc"
            else f" (n={r.n}, energy of k={r.match_k})"
        ),
        axis=1,
    )
    g["value"] = g.apply(
        lambda r: (
            f"{r.rms_cos:.3f}" + ("" if pd.isna(r.rms_cos_theory) else f" / {r.rms_cos_theory:.3f}")
        ),
        axis=1,
    )
    keys = ["state", "time", "estimator", "alpha", "P"]
    return g.groupby(keys, sort=False).value.first().unstack("P").reset_index().round(3)


def write_section(folder: Path, plan, runs, selection, acc, diffs, grad, align, dims) -> None:
    """The tables, figures and ``section.json`` the report shows."""
    from nmnc.checkpoint import load_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint(runs[0])
    names = figures(runs, grad, align, folder)
    tables = {
        "accuracy.csv": acc,
        "differences.csv": diffs,
        "gradient.csv": grad,
        "alignment.csv": align,
        "dimension.csv": dims,
    }
    if len(selection):
        tables["selection.csv"] = selection
    for fname, df in tables.items():
        atomic_write_text(folder / fname, df.to_csv(index=False))
    budget = (
        f"Recipe {plan.recipe}: {ckpt.arch} ({ckpt.model_settings.get('hidden')} units x width "
        f"{ckpt.model_settings.get('width')}) on {ckpt.dataset}; {ckpt.total_steps} steps of "
        f"batch {ckpt.config.get('batch_size')}; rules {', '.join(plan.rules)}; seeds "
        f"{', '.join(map(str, plan.seeds))}."
    )
    nmnc_runs = [r for r in runs if load_checkpoint(r).rule == "nmnc"]
    ratio = _ratio(grad, load_checkpoint(nmnc_runs[0]).rule_settings["k"] if nmnc_runs else None)
    section = {
        "title": "Recurrent networks",
        "paragraphs": [
            budget,
            "Test accuracy is measured on every decision of the test split (a NeuroGym trial's "
            "choice at its last step; a sequential-CIFAR image's class at its last row); 95% "
            "intervals resample seeds and trials; differences are paired by seed.",
            "Gradient quality on the first BP (BPTT) run and the same network at "
            "initialisation: RMS over test sequences of the cosine between a rule's estimate of "
            "dL/dh_t at every step and BPTT's, with the Beta-law theory where it applies "
            "(measured / theory). time=all perturbs every step in one rollout per draw; "
            "time=step one step at a time ((T + 1) / 2 rollouts per draw)." + ratio,
        ],
        "tables": [
            {
                "caption": "Test accuracy (95% interval over seeds and trials)",
                "csv": "accuracy.csv",
            },
            {"caption": "Paired differences of test accuracy", "csv": "differences.csv"},
            {"caption": "Gradient quality: RMS cosine with BPTT", "frame": gradient_summary(grad)},
            {"caption": "Hidden-state dimension (pooled over time)", "csv": "dimension.csv"},
        ],
        "figures": names,
    }
    if len(selection):
        section["tables"].insert(2, {"caption": "Step sizes (validation)", "csv": "selection.csv"})
    for t in section["tables"]:  # tables go in as records: the report needs no CSV reading
        frame = t.pop("frame", None)
        frame = frame if frame is not None else pd.read_csv(folder / t["csv"])
        t["records"] = json.loads(frame.to_json(orient="records", double_precision=4))
    atomic_write_text(folder / "section.json", json.dumps(section, indent=1))


def _ratio(grad: pd.DataFrame, k: int | None) -> str:
    """A sentence on NMNC's cosine over energy-matched VNC's at the largest P (trained,
    time=all), at the k the NMNC runs trained with (else the smallest measured)."""
    t = grad[(grad.state == "trained") & (grad.time == "all") & (grad.P == grad.P.max())]
    m = t[(t.rule == "nmnc") & (t.noise_shape == "white")]
    if not len(m):
        return ""
    k = k if k in set(m.k) else int(m.k.min())
    best = m[m.k == k].iloc[0]
    v = t[(t.rule == "vnc") & (t.match_k == k)]
    if not len(v):
        return ""
    r = best.rms_cos / max(v.rms_cos.iloc[0], 1e-12)
    P, T, n, k = best.P, best["T"], best.n, best.k
    theory = np.sqrt(best.alpha * (P + T * n - 1) / (P + T * k - 1))
    return (
        f" At P = {int(best.P)} NMNC (k = {int(best.k)}, white) reaches {r:.1f}x the RMS cosine of "
        "energy-matched VNC "
        f"(alpha = {best.alpha:.2f}, n = {int(n)}, T = {int(T)}; theory: "
        f"sqrt(alpha (P + T n - 1) / (P + T k - 1)) = "
        f"{theory:.1f}x)."
    )
