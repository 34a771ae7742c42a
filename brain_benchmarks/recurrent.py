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
   its recurrent section (``section.json``, written by ``recurrent_section.py``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nmnc.errors import NmncError, UnknownNameError

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
    from .recurrent_section import write_section

    write_section(folder, plan, runs, selection, acc, diffs, grad, align, dims)
    return folder


def main(argv=None) -> int:
    """Run an experiment's recurrent part and print its tables."""
    from nmnc.cli import entry, out_dir, parser  # noqa: F401

    from . import recurrent_section
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
    print(recurrent_section.gradient_summary(grad).to_string(index=False))
    print(f"tables and figures: {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from nmnc.cli import entry

    entry(main, "brain_benchmarks.recurrent")
