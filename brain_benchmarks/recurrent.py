"""The recurrent experiment: ``python -m brain_benchmarks.recurrent [--experiment NAME_OR_FILE]``.

Runs an experiment's ``[recurrent]`` section (the main job runs it too, after the image part):
1. trains its recipe (a recurrent model on a sequence dataset) with every rule and seed under the
   fair protocol (step sizes chosen per rule on the validation split; paired seeds; read-out-only
   control), exactly as the image experiment does;
2. test accuracy of every run on every decision of the test split (a NeuroGym trial's choice, a
   sequential-CIFAR image), with 95% intervals resampling seeds and trials, and paired
   differences between rules;
3. gradient quality against BPTT (activity and weight space, against P, k and the time mode) and
   the hidden-state manifold (alignment against k, dimension), trained against untrained, on the
   first BP run;
4. tables and figures in ``<out>/<experiment>/recurrent/``, which the main job's report shows as
   its recurrent section (``section.json``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nmnc.errors import NmncError, UnknownNameError
from nmnc.io import atomic_write_text

RULE_ORDER = ["bp", "vnc", "nmnc", "readout"]
PAIRS = [
    ("nmnc", "vnc"),
    ("nmnc", "bp"),
    ("vnc", "bp"),
    ("bp", "readout"),
    ("vnc", "readout"),
    ("nmnc", "readout"),
]


@dataclass(frozen=True)
class RecurrentPlan:
    """The recurrent part of an experiment: one recipe, rules x seeds, and its analyses."""

    recipe: str = ""  # a recurrent recipe (rnn-cpu, rnn-scifar-cpu, ...); '' = no recurrent part
    rules: tuple[str, ...] = ("bp", "vnc", "nmnc", "readout")
    seeds: tuple[int, ...] = (0, 1, 2)
    run: dict = field(default_factory=dict)  # settings on top of the recipe for every run
    select: dict = field(default_factory=dict)  # step sizes chosen on validation (readout_lr, lr)
    gradient_P: tuple[int, ...] = (1, 4, 16)
    gradient_k: tuple[int, ...] = (4, 16)
    gradient_time: tuple[str, ...] = ("all", "step")
    gradient_batch: int = 16
    manifold_sequences: int = 128
    alignment_k: tuple[int, ...] = (1, 2, 4, 8, 16, 32)

    def experiment(self, name: str):
        """The plan as an image-style experiment of its own, which the protocol trains."""
        from .experiment import Experiment, TrainPlan

        train = TrainPlan(self.recipe, self.rules, self.seeds, self.run, {}, self.select)
        return Experiment(name=f"{name}-recurrent", train=train)

    def check(self, where: str) -> None:
        """Refuse a plan that cannot run, before any work."""
        if not self.recipe:
            return
        from nmnc.analysis import RecurrentAlignmentConfig, RecurrentGradientConfig
        from nmnc.models import MODELS
        from nmnc.training import get_recipe

        from .experiment import _in

        recipe = _in(where, "recurrent", "recipe", get_recipe, self.recipe)
        if MODELS.get(recipe.model).kind != "recurrent":
            raise NmncError(
                f"{where} [recurrent] recipe: {self.recipe} trains {recipe.model}, not a recurrent "
                "model; choose a recipe of rnn or gru (python -m nmnc.train --list)"
            )
        if "bp" not in self.rules:
            raise NmncError(f"{where} [recurrent] rules: must include bp (BPTT, the reference)")
        for rule in self.rules:
            if rule not in RULE_ORDER:
                raise UnknownNameError(f"rule in {where} [recurrent] rules", rule, RULE_ORDER)
        from .experiment import check_train

        check_train(self.experiment("check"), where, "recurrent")
        gradient = lambda: RecurrentGradientConfig(  # noqa: E731
            "unused",
            P=self.gradient_P,
            k=self.gradient_k,
            time=self.gradient_time,
            batch_size=self.gradient_batch,
            manifold_sequences=self.manifold_sequences,
        )
        _in(where, "recurrent", "gradient_*", gradient)
        _in(
            where,
            "recurrent",
            "alignment_k",
            lambda: RecurrentAlignmentConfig("unused", k=self.alignment_k),
        )


def decisions(ckpt, data=None, data_root=None) -> np.ndarray:
    """Whether each scored step (decision) of the test split is right, in split order, for a
    checkpoint (or its path)."""
    from nmnc.checkpoint import load_checkpoint
    from nmnc.data import load_dataset

    if not hasattr(ckpt, "build_model"):
        ckpt = load_checkpoint(ckpt)
    if data is None:
        data = load_dataset(ckpt.dataset, data_root, settings=ckpt.config.get("dataset_settings"))
    model, test = ckpt.build_model(), data.test
    idx = torch.arange(len(test))
    out = []
    with torch.no_grad():
        for x, y, scored in test.loader(
            [(i, idx[i : i + 256]) for i in range(0, len(idx), 256)], False, 0
        ):
            right = model(x).argmax(-1) == y
            out.append(right[scored].numpy())
    return np.concatenate(out)


def accuracy_tables(runs: list[Path], data_root=None, n_boot: int = 1000):
    """(per-rule accuracy with 95% intervals, paired differences) over seeds and trials."""
    from nmnc.checkpoint import load_checkpoint
    from nmnc.data import load_dataset

    from . import stats

    ckpts = [load_checkpoint(r) for r in runs]
    first = ckpts[0]
    data = load_dataset(first.dataset, data_root, settings=first.config.get("dataset_settings"))
    by_rule: dict[str, list] = {}
    for ckpt in ckpts:
        by_rule.setdefault(ckpt.rule, []).append((ckpt.seed, decisions(ckpt, data)))
    rules = [r for r in RULE_ORDER if r in by_rule]
    seeds = sorted({s for v in by_rule.values() for s, _ in v})
    mats = {}  # rule -> (seeds, n_boot) accuracy on resampled trials (the same resamples for all)
    n = len(next(iter(by_rule.values()))[0][1])
    order = [(r, s) for r in rules for s, _ in sorted(by_rule[r], key=lambda t: t[0])]
    correct = {(r, s): c for r in rules for s, c in by_rule[r]}
    boot = stats.stimulus_scores(
        [{"kind": "accuracy", "index": np.arange(n), "correct": correct[o]} for o in order], n_boot
    )
    for r in rules:
        rows = [i for i, o in enumerate(order) if o[0] == r]
        mats[r] = boot[rows]
    table = []
    for r in rules:
        accs = [correct[(r, s)].mean() for s in seeds if (r, s) in correct]
        lo, hi = stats.interval(stats.seed_means([mats[r]])[0])
        table.append(
            {
                "rule": r,
                "seeds": len(accs),
                "test_acc": float(np.mean(accs)),
                "sd_seeds": float(np.std(accs, ddof=1)) if len(accs) > 1 else np.nan,
                "ci_low": lo,
                "ci_high": hi,
                "decisions": n,
            }
        )
    diffs = []
    for a, b in PAIRS:
        both = [s for s in seeds if (a, s) in correct and (b, s) in correct]  # paired by seed
        if not both:
            continue
        d = stats.paired(*(boot[[order.index((r, s)) for s in both]] for r in (a, b)))
        point = np.mean([correct[(a, s)].mean() - correct[(b, s)].mean() for s in both])
        diffs.append({"difference": f"{a} - {b}", "seeds": len(both), "mean": float(point), **d})
    return pd.DataFrame(table), pd.DataFrame(diffs)


def figures(runs: list[Path], grad: pd.DataFrame, align: pd.DataFrame, out: Path) -> list[str]:
    """Learning curves, gradient quality against P and alignment against k (PNG names)."""
    from nmnc.analysis.efficiency import read_run
    from nmnc.plots import save, setup

    sns = setup()
    import matplotlib.pyplot as plt

    logs = pd.concat([read_run(r) for r in runs], ignore_index=True)
    evals = logs.dropna(subset=["test_acc"])
    rules = [r for r in RULE_ORDER if r in set(logs.rule)]
    palette = dict(zip(rules, sns.color_palette(n_colors=len(rules))))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    sns.lineplot(
        data=evals,
        x="examples",
        y="test_acc",
        hue="rule",
        hue_order=rules,
        palette=palette,
        errorbar=("ci", 95),
        ax=axes[0],
    )
    noisy = evals[evals.perturbations > 0]
    if len(noisy):
        sns.lineplot(
            data=noisy,
            x="perturbations",
            y="test_acc",
            hue="rule",
            palette=palette,
            errorbar=("ci", 95),
            ax=axes[1],
        )
        axes[1].set_xscale("log")
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


def run_recurrent(
    plan: RecurrentPlan, name: str, work_dir, out, data_root=None, progress: bool = True
) -> Path | None:
    """Train, measure and tabulate the recurrent part; returns its folder (None without one)."""
    if not plan.recipe:
        return None
    from nmnc.analysis import (
        RecurrentAlignmentConfig,
        RecurrentGradientConfig,
        recurrent_alignment,
        recurrent_gradients,
    )
    from nmnc.checkpoint import load_checkpoint

    from .main import analysis
    from .protocol import Protocol

    exp = plan.experiment(name)
    folder = Path(out) / "recurrent"
    protocol = Protocol(exp, work_dir, data_root)
    protocol.check_folders()
    runs, selection = protocol.run(progress)
    first = {}
    for run in runs:
        first.setdefault(load_checkpoint(run / "checkpoint.pt").rule, str(run))
    root = Path(work_dir) / exp.name
    common = {"data_root": data_root, "progress": progress}
    gcfg = RecurrentGradientConfig(
        first["bp"],
        str(root / "gradient"),
        P=plan.gradient_P,
        k=plan.gradient_k,
        time=plan.gradient_time,
        batch_size=plan.gradient_batch,
        manifold_sequences=plan.manifold_sequences,
        **common,
    )
    acfg = RecurrentAlignmentConfig(
        first["bp"], str(root / "alignment"), k=plan.alignment_k, **common
    )
    analysis(gcfg, recurrent_gradients)
    analysis(acfg, recurrent_alignment)
    grad = pd.read_csv(root / "gradient" / "gradient.csv")
    align = pd.read_csv(root / "alignment" / "alignment.csv")
    dims = pd.read_csv(root / "alignment" / "dimension.csv")
    acc, diffs = accuracy_tables(runs, data_root)
    write_section(folder, plan, runs, selection, acc, diffs, grad, align, dims)
    return folder


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


def main(argv=None) -> int:
    """Run an experiment's recurrent part and print its tables."""
    from nmnc.cli import entry, out_dir, parser  # noqa: F401

    from .experiment import builtin_names, load_experiment

    p = parser(
        "python -m brain_benchmarks.recurrent",
        __doc__.split("\n\n")[0],
        out="folder for the tables and figures: <DIR>/<experiment>/recurrent/ (default reports)",
        sets="setting of the [recurrent] section as recurrent.KEY=VALUE, e.g. "
        "recurrent.recipe=rnn-scifar-cpu or recurrent.seeds=0,1,2",
        listing="list the built-in experiments and exit",
    )
    p.add_argument(
        "--experiment",
        default="default",
        help=f"built-in experiment ({', '.join(builtin_names())}) or a TOML file",
    )
    p.add_argument(
        "--work",
        default="runs/main",
        metavar="DIR",
        help="folder for the training runs: <DIR>/<experiment>-recurrent/",
    )
    args = p.parse_args(argv)
    if args.list:
        for name in builtin_names():
            print(f"{name:10s} {load_experiment(name).recurrent.recipe or '(no recurrent part)'}")
        return 0
    from nmnc.config import parse_sets, to_json

    exp = load_experiment(args.experiment, parse_sets(args.sets))
    if not exp.recurrent.recipe:
        raise NmncError(
            f"experiment {exp.name} has no recurrent part; give one with "
            "--set recurrent.recipe=rnn-cpu (see python -m nmnc.train --list)"
        )
    out = Path(out_dir(args.out or "reports", "the recurrent tables and figures")) / exp.name
    work = out_dir(args.work, "training runs", "--work")
    if args.print_config:
        print(to_json(exp.recurrent))
        return 0
    folder = run_recurrent(exp.recurrent, exp.name, work, out, args.data_root, not args.quiet)
    acc = pd.read_csv(folder / "accuracy.csv")
    diffs = pd.read_csv(folder / "differences.csv")
    grad = pd.read_csv(folder / "gradient.csv")
    fmt = {"float_format": lambda v: f"{v:.3f}", "index": False}
    print(acc.to_string(**fmt))
    print(diffs.to_string(**fmt))
    print(gradient_summary(grad).to_string(index=False))
    print(f"tables and figures: {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from nmnc.cli import entry

    entry(main, "brain_benchmarks.recurrent")
