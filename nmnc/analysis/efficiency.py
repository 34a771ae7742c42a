"""Sample efficiency: accuracy against examples seen and perturbations spent, and the budget each
rule needs to reach a target accuracy, from training runs' metric logs."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..checkpoint import load_checkpoint
from ..errors import NmncError
from ..io import atomic_write_text
from ..plots import save, setup


@dataclass(frozen=True)
class EfficiencyConfig:
    """Runs whose learning curves are compared, and the accuracy each must reach."""

    runs: tuple[str, ...]  # run folders written by nmnc.train
    out: str | None = None  # folder: efficiency.csv, to_target.csv, efficiency.png/svg
    target_acc: float = 0.3

    def __post_init__(self):
        if not self.runs:
            raise NmncError("give at least one run folder")
        if not 0 <= self.target_acc <= 1:
            raise NmncError(f"target_acc must be between 0 and 1, got {self.target_acc}")


def read_run(path: str | Path) -> pd.DataFrame:
    """A run's metrics log as a table, tagged with its rule, seed, model and folder."""
    path = Path(path)
    log = path / "metrics.jsonl"
    if not log.exists():
        raise NmncError(
            f"{path} has no metrics.jsonl; "
            "give run folders written by 'python -m nmnc.train --out DIR'"
        )
    meta = (
        json.loads((path / "run.json").read_text())
        if (path / "run.json").exists()
        else load_checkpoint(path).config
    )
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # torn by a crash or a full disk; --resume rewrites the log
                break
            raise NmncError(
                f"{log}: line {i + 1} is not JSON; resume the run with --resume {path} "
                "(its checkpoint rewrites the log) or give another run"
            ) from None
    return pd.DataFrame(rows).assign(
        rule=meta["rule"], seed=meta["seed"], model=meta["model"], run=str(path)
    )


def sample_efficiency(cfg: EfficiencyConfig) -> dict[str, pd.DataFrame]:
    """Tables ``curve`` (test accuracy against budget), ``to_target`` (per run) and ``summary``
    (per rule)."""
    if not cfg.runs:
        raise NmncError("give at least one run folder")
    runs = pd.concat([read_run(p) for p in cfg.runs], ignore_index=True)
    evals = runs.dropna(subset=["test_acc"]) if "test_acc" in runs else runs.iloc[0:0]
    if evals.empty:
        raise NmncError("no test evaluations in the given runs; train with --set eval_every=N")
    curve = evals[["rule", "seed", "model", "step", "examples", "perturbations", "test_acc"]]
    need = []
    for (rule, seed), g in evals.groupby(["rule", "seed"]):
        hit = g[g.test_acc >= cfg.target_acc]
        first = hit.iloc[0] if len(hit) else None
        need.append(
            {
                "rule": rule,
                "seed": seed,
                "target_acc": cfg.target_acc,
                "final_acc": g.test_acc.iloc[-1],
                "examples_to_target": None if first is None else int(first.examples),
                "perturbations_to_target": None if first is None else int(first.perturbations),
            }
        )
    need = pd.DataFrame(need)
    with warnings.catch_warnings():  # a rule no run of which reached the target: median NaN
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        summary = (
            need.groupby("rule")
            .agg(
                seeds=("seed", "count"),
                final_acc_mean=("final_acc", "mean"),
                final_acc_sd=("final_acc", "std"),
                reached=("examples_to_target", lambda s: int(s.notna().sum())),
                examples_to_target=("examples_to_target", "median"),
                perturbations_to_target=("perturbations_to_target", "median"),
            )
            .reset_index()
        )
    if cfg.out:
        out = Path(cfg.out)
        atomic_write_text(out / "efficiency.csv", curve.to_csv(index=False))
        atomic_write_text(out / "to_target.csv", need.to_csv(index=False))
        plot(curve, out)
    return {"curve": curve, "to_target": need, "summary": summary}


def plot(curve: pd.DataFrame, out: Path) -> list[Path]:
    """efficiency.png/svg: test accuracy against examples seen and against perturbations spent."""
    sns = setup()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    sns.lineplot(data=curve, x="examples", y="test_acc", hue="rule", marker="o", ax=axes[0])
    noisy = curve[curve.perturbations > 0]
    if len(noisy):
        sns.lineplot(
            data=noisy, x="perturbations", y="test_acc", hue="rule", marker="o", ax=axes[1]
        )
        axes[1].set_xscale("log")
    axes[0].set_title("accuracy vs examples seen")
    axes[1].set_title("accuracy vs perturbations spent")
    return save(fig, out, "efficiency")
