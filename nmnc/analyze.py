"""Manifold analyses of checkpoints and training runs.

    python -m nmnc.analyze --checkpoint PATH [--data-root D] [--images N] --out DIR
    python -m nmnc.analyze width-sweep --model cnn --widths 0.25,0.5,1,2 [--checkpoints P1,P2,...] --out DIR
    python -m nmnc.analyze efficiency --runs DIR [DIR ...] [--target-acc 0.3] --out DIR
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .alignment import layer_alignment
from .checkpoint import load_checkpoint, model_from_checkpoint
from .data import load_dataset
from .data.paths import atomic_write_text
from .dimension import participation_ratio, power_law, twonn
from .errors import NmncError, run_cli
from .models import MODELS, build_model
from .plots import save, setup


def write_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def held_out(data, images: int, seed: int = 0) -> torch.Tensor:
    n = len(data.test)
    if images > n:
        raise NmncError(f"--images {images} exceeds the {n} test images")
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:images]
    return data.test.batch(idx, False, None)[0]


@torch.no_grad()
def activities(model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    acts, h = {}, x
    for name in model.hidden_layers:
        h = torch.cat([model.stage(name)(c) for c in h.split(256)])
        acts[name] = h
    return acts


def analyse_model(model, x, state: str) -> dict[str, pd.DataFrame]:
    model.eval()
    curves, angles, dims = [], [], []
    for layer, h in tqdm(activities(model, x).items(), desc=f"layers ({state})", leave=False):
        r = layer_alignment(model, layer, h)
        curves += r["curve"]
        angles += r["angles"]
        dims.append(r["dimension"])
    tag = lambda rows: pd.DataFrame(rows).assign(state=state)  # noqa: E731
    return {"alignment": tag(curves), "angles": tag(angles), "dimension": tag(dims)}


def checkpoint_analysis(args) -> int:
    ckpt = load_checkpoint(args.checkpoint)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(ckpt["data"]["dataset"], args.data_root, input_size=ckpt["data"]["input_size"])
    x = held_out(data, args.images)
    trained = model_from_checkpoint(ckpt)
    torch.manual_seed(ckpt["config"]["seed"])
    untrained = build_model(ckpt["model"]["name"], MODELS.settings(ckpt["model"]["name"], ckpt["model"]["settings"]))
    parts = [analyse_model(trained, x, "trained"), analyse_model(untrained, x, "untrained")]
    tables = {k: pd.concat([p[k] for p in parts], ignore_index=True) for k in parts[0]}
    for name, df in tables.items():
        write_csv(df, out / f"{name}.csv")
    figures = plot_alignment(tables["alignment"], tables["dimension"], out)
    summary = summarise(tables)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nwrote {', '.join(sorted(str(p.name) for p in out.glob('*.csv')))} and {len(figures)} figures to {out}")
    return 0


def summarise(tables) -> pd.DataFrame:
    a = tables["alignment"]
    rows = []
    for (state, layer), g in a.groupby(["state", "layer"], sort=False):
        row = {"state": state, "layer": layer, "n": int(g.n.iloc[0])}
        for k in (8, 32, 128):
            hit = g[g.k == k]
            if len(hit):
                row[f"alpha@{k}"] = hit.alpha.iloc[0]
                row[f"chance@{k}"] = hit.chance.iloc[0]
        d = tables["dimension"]
        d = d[(d.state == state) & (d.layer == layer)].iloc[0]
        row.update(pr=d.pr, twonn=d.twonn)
        rows.append(row)
    return pd.DataFrame(rows)


def plot_alignment(alignment: pd.DataFrame, dimension: pd.DataFrame, out: Path) -> list[Path]:
    sns = setup()
    import matplotlib.pyplot as plt

    layers = list(dict.fromkeys(alignment.layer))
    fig, axes = plt.subplots(1, len(layers), figsize=(3.4 * len(layers), 3.2), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, layer in zip(axes, layers):
        g = alignment[alignment.layer == layer]
        sns.lineplot(data=g, x="k", y="alpha", hue="state", ax=ax, legend=ax is axes[0])
        c = g[g.state == g.state.iloc[0]]
        ax.plot(c.k, c.chance, "k--", lw=1, label="chance k/n")
        ax.set_xscale("log")
        ax.set_title(f"{layer} (n={int(g.n.iloc[0])})")
        ax.set_xlabel("manifold dimension k")
    axes[0].set_ylabel("alpha_k = |J U_k|^2 / |J|^2")
    axes[0].legend(fontsize=8)
    paths = save(fig, out, "alignment")
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, col, title in zip(axes, ("pr", "twonn"), ("participation ratio", "TwoNN intrinsic dimension")):
        sns.barplot(data=dimension, x="layer", y=col, hue="state", ax=ax)
        ax.set_title(title)
    return paths + save(fig, out, "dimension")


def width_sweep(args) -> int:
    from .config import TrainConfig, build_config
    from .trainer import train_or_resume

    widths = [float(w) for w in args.widths.split(",")]
    ckpts = args.checkpoints.split(",") if args.checkpoints else [None] * len(widths)
    if len(ckpts) != len(widths):
        raise NmncError(f"--checkpoints gives {len(ckpts)} paths for {len(widths)} widths; give one per width, in order")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, x = [], None
    for width, path in zip(widths, ckpts):
        if path is None:
            cfg = build_config(TrainConfig(model=args.model, rule="bp", data_root=args.data_root, steps=args.steps,
                                           train_examples=args.train_examples, seed=args.seed,
                                           out=str(out / "runs" / f"{args.model}_w{width:g}")),
                               {"width": str(width), "eval_every": str(args.steps)})
            path = train_or_resume(cfg)
        ckpt = load_checkpoint(path)
        if abs(ckpt["model"]["settings"]["width"] - width) > 1e-9:
            raise NmncError(f"checkpoint {path} has width {ckpt['model']['settings']['width']}, expected {width}")
        model = model_from_checkpoint(ckpt)
        if x is None:
            data = load_dataset(ckpt["data"]["dataset"], args.data_root, input_size=ckpt["data"]["input_size"])
            x = held_out(data, args.images)
        for layer, h in activities(model, x).items():
            X = h.flatten(1)
            rows.append({"model": args.model, "width": width, "layer": layer, "n": X.shape[1],
                         "pr": participation_ratio(X), "twonn": twonn(X),
                         "test_acc": next((m["test_acc"] for m in reversed(ckpt["metrics"]) if "test_acc" in m), None)})
    df = pd.DataFrame(rows)
    fits = []
    for measure in ("pr", "twonn"):
        for layer, g in df.groupby("layer", sort=False):
            beta, _ = power_law(g.width, g[measure])
            beta_n, _ = power_law(g.n, g[measure])
            fits.append({"measure": measure, "layer": layer, "beta_width": beta, "beta_n": beta_n})
        beta, _ = power_law(df.width, df[measure])
        fits.append({"measure": measure, "layer": "all", "beta_width": beta, "beta_n": power_law(df.n, df[measure])[0]})
    fits = pd.DataFrame(fits)
    write_csv(df, out / "width.csv")
    write_csv(fits, out / "width_fit.csv")
    sns = setup()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, measure in zip(axes, ("pr", "twonn")):
        sns.lineplot(data=df, x="n", y=measure, hue="layer", marker="o", ax=ax)
        ax.set_xscale("log")
        ax.set_yscale("log")
        b = fits[(fits.measure == measure) & (fits.layer == "all")].beta_width.iloc[0]
        ax.set_title(f"{measure}: dimension ~ width^{b:.2f}")
        ax.set_xlabel("layer size n_l")
    save(fig, out, "width")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print()
    print(fits.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def read_run(path: Path) -> pd.DataFrame:
    path = Path(path)
    log = path / "metrics.jsonl"
    if not log.exists():
        raise NmncError(f"{path} has no metrics.jsonl; give run folders written by 'python -m nmnc.train --out DIR'")
    meta = json.loads((path / "run.json").read_text()) if (path / "run.json").exists() else load_checkpoint(path)["config"]
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    df = pd.DataFrame(rows)
    return df.assign(rule=meta["rule"], seed=meta["seed"], model=meta["model"], run=str(path))


def efficiency(args) -> int:
    runs = pd.concat([read_run(p) for p in args.runs], ignore_index=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    evals = runs.dropna(subset=["test_acc"]) if "test_acc" in runs else runs.iloc[0:0]
    if evals.empty:
        raise NmncError("no test evaluations in the given runs; train with --set eval_every=N")
    curve = evals[["rule", "seed", "model", "step", "examples", "perturbations", "test_acc"]]
    write_csv(curve, out / "efficiency.csv")
    need = []
    for (rule, seed), g in evals.groupby(["rule", "seed"]):
        hit = g[g.test_acc >= args.target_acc]
        first = hit.iloc[0] if len(hit) else None
        need.append({"rule": rule, "seed": seed, "target_acc": args.target_acc, "final_acc": g.test_acc.iloc[-1],
                     "examples_to_target": None if first is None else int(first.examples),
                     "perturbations_to_target": None if first is None else int(first.perturbations)})
    need = pd.DataFrame(need)
    table = need.groupby("rule").agg(seeds=("seed", "count"), final_acc_mean=("final_acc", "mean"), final_acc_sd=("final_acc", "std"),
                                     reached=("examples_to_target", lambda s: int(s.notna().sum())),
                                     examples_to_target=("examples_to_target", "median"),
                                     perturbations_to_target=("perturbations_to_target", "median")).reset_index()
    write_csv(need, out / "to_target.csv")
    sns = setup()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    sns.lineplot(data=curve, x="examples", y="test_acc", hue="rule", marker="o", ax=axes[0])
    noisy = curve[curve.perturbations > 0]
    if len(noisy):
        sns.lineplot(data=noisy, x="perturbations", y="test_acc", hue="rule", marker="o", ax=axes[1])
        axes[1].set_xscale("log")
    axes[0].set_title("accuracy vs examples seen")
    axes[1].set_title("accuracy vs perturbations spent")
    save(fig, out, "efficiency")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "width-sweep":
        p = argparse.ArgumentParser(prog="python -m nmnc.analyze width-sweep")
        p.add_argument("--model", default="cnn")
        p.add_argument("--widths", default="0.25,0.5,1,2")
        p.add_argument("--checkpoints", help="comma-separated checkpoints, one per width (else each width is trained)")
        p.add_argument("--steps", type=int, default=300)
        p.add_argument("--train-examples", type=int, default=5000)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--images", type=int, default=1000)
        p.add_argument("--data-root")
        p.add_argument("--out", required=True)
        return width_sweep(p.parse_args(argv[1:]))
    if argv and argv[0] == "efficiency":
        p = argparse.ArgumentParser(prog="python -m nmnc.analyze efficiency")
        p.add_argument("--runs", nargs="+", required=True)
        p.add_argument("--target-acc", type=float, default=0.3)
        p.add_argument("--out", required=True)
        return efficiency(p.parse_args(argv[1:]))
    p = argparse.ArgumentParser(prog="python -m nmnc.analyze", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data-root")
    p.add_argument("--images", type=int, default=1000, help="held-out test images")
    p.add_argument("--out", required=True)
    return checkpoint_analysis(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="nmnc.analyze"))
