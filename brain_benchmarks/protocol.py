"""The fair training protocol of an experiment: step sizes chosen per rule on the validation split,
then paired final runs over seeds.

1. **Read-out step** (``select.readout_lr``): every candidate trains the read-out-only control
   (``readout``; ``bp`` when the experiment has no control) at the first seed; the best validation
   accuracy picks one read-out learning rate, shared by every rule, so no rule's read-out is
   favoured.
2. **Hidden step** (``select.lr``): every candidate trains each rule that learns hidden layers at
   the first seed, with the chosen read-out step; each rule keeps its own best.
3. **Final runs**: every rule at its chosen settings for every seed. Seeds pair the runs across
   rules (same initialisation, batches and noise stream per seed). The first seed's final run is
   the selection run itself (copied, not retrained).

Test accuracy is never used to choose anything. Selection runs live in ``<root>/select/``; the
choices are written to ``<root>/selection.csv``, the final runs' metrics to ``<root>/cells.csv``.

Each stage is one batch of independent cells for a launcher (``brain_benchmarks/launch.py``:
this process, local processes or SLURM jobs): the read-out step of every grid point, then every
rule's hidden step at every grid point, then every final run.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nmnc.config import TrainConfig
from nmnc.errors import NmncError
from nmnc.io import atomic_write_text
from nmnc.training import get_recipe
from nmnc.training.trainer import check_run_folder

from .launch import Serial

SELECTABLE = ("readout_lr", "lr")
CONTROL = "readout"


@dataclass(frozen=True)
class Planned:
    """One run of the protocol: its config, and what it is for."""

    config: TrainConfig
    rule: str
    seed: int
    point: dict  # the grid point
    stage: str  # 'readout_lr' or 'lr' (selection) or 'final'
    value: float | None = None  # the candidate tried (selection runs)


def _tag(settings: dict) -> str:
    return "".join(f"_{k}{v}" for k, v in settings.items())


class Protocol:
    """Plans and runs an experiment's training: selection stages, then final runs."""

    def __init__(self, exp, work_dir: str | Path, data_root: str | None = None, launcher=None):
        self.exp, self.data_root = exp, data_root
        self.launcher = launcher  # runs each stage's cells (brain_benchmarks.launch); None: serial
        self.cells: pd.DataFrame | None = None  # the final runs' table, once run() has finished
        self.recipe = get_recipe(exp.train.recipe)
        self.root = Path(work_dir) / exp.name
        self.select = {k: [float(x) for x in v] for k, v in exp.train.select.items()}

    # ---- naming and configs ----------------------------------------------------------------
    def _extra(self, rule: str, point: dict) -> dict:
        """The experiment's settings on top of the recipe for a run of ``rule`` at ``point``."""
        from .experiment import _accepts

        t = self.exp.train
        return {k: v for k, v in {**t.run, **point}.items() if _accepts(self.recipe.model, rule, k)}

    def _config(self, rule: str, seed: int, point: dict, chosen: dict, folder: Path):
        extra = {**self._extra(rule, point), **chosen}
        return self.recipe.config(rule, folder, seed, self.data_root, extra)

    def _own(self, rule: str, point: dict) -> dict:
        """The grid point's settings that runs of ``rule`` have (bp has no P)."""
        from .experiment import _accepts

        return {k: v for k, v in point.items() if _accepts(self.recipe.model, rule, k)}

    def _name(self, rule: str, point: dict, seed: int, chosen: dict | None = None) -> str:
        own = self._own(rule, point)
        return f"{rule}_{self.recipe.model}{_tag(own)}{_tag(chosen or {})}_s{seed}"

    def control(self) -> str:
        """The rule whose runs choose the read-out step."""
        return CONTROL if CONTROL in self.exp.train.rules else "bp"

    def hidden_rules(self) -> list[str]:
        """Rules whose hidden learning rate is selected (all but the read-out-only control)."""
        return [r for r in self.exp.train.rules if r != CONTROL]

    def _fixed_readout(self, point: dict) -> dict:
        """Without a read-out selection the read-out keeps the recipe's step, fixed for every
        rule and candidate (``readout_lr=0`` would tie it to each hidden candidate)."""
        if "lr" not in self.select or "readout_lr" in self.select:
            return {}
        seed = self.exp.train.seeds[0]
        lr = self._config(self.control(), seed, point, {}, self.root / "unused").lr
        return {"readout_lr": lr}

    def check_folders(self) -> None:
        """Refuse, before any work, a selection or final run folder that holds a run with other
        settings (final runs: apart from the step sizes the protocol is about to choose)."""
        for p in self.candidates():
            check_run_folder(p.config)
        for f in self.finals({}):
            check_run_folder(f.config, ignore=SELECTABLE)

    def candidates(self) -> list[Planned]:
        """The selection runs, with the hidden stage shown at the first read-out candidate (the
        protocol runs it at the chosen one): what validates an experiment before any work."""
        out = []
        for point in self.exp.grid_points():
            rlrs = self.select.get("readout_lr", [])
            base = {"readout_lr": rlrs[0]} if rlrs else self._fixed_readout(point)
            out += [self._selection(self.control(), point, "readout_lr", v, {}) for v in rlrs]
            for rule in self.hidden_rules() if "lr" in self.select else []:
                out += [self._selection(rule, point, "lr", v, base) for v in self.select["lr"]]
        return out

    def _selection(self, rule, point, key, value, chosen) -> Planned:
        settings = {**chosen, key: value}
        folder = self.root / "select" / self._name(rule, point, self.exp.train.seeds[0], settings)
        cfg = self._config(rule, self.exp.train.seeds[0], point, settings, folder)
        return Planned(cfg, rule, self.exp.train.seeds[0], point, key, value)

    def finals(self, chosen: dict) -> list[Planned]:
        """The final runs (seeds, then grid points, then rules) at the chosen settings;
        ``chosen`` maps (rule, grid-point tag) to settings."""
        out, seen = [], set()
        for seed in self.exp.train.seeds:
            for point in self.exp.grid_points():
                for rule in self.exp.train.rules:
                    name = self._name(rule, point, seed)
                    if name in seen:
                        continue
                    seen.add(name)
                    settings = chosen.get((rule, _tag(point)), {})
                    cfg = self._config(rule, seed, point, settings, self.root / name)
                    out.append(Planned(cfg, rule, seed, point, "final"))
        return out

    # ---- running ---------------------------------------------------------------------------
    def run(self, progress: bool = True) -> tuple[list[Path], pd.DataFrame]:
        """Select, then train the final runs; returns their folders and the selection table.

        Each stage is one batch for the launcher: the read-out step of every grid point, then
        every rule's hidden step at every grid point, then every final run. The final runs'
        metrics are gathered into ``<root>/cells.csv`` (:attr:`cells`)."""
        launcher = self.launcher or Serial(progress)
        points = self.exp.grid_points()
        control = self.control()
        base = {_tag(p): self._fixed_readout(p) for p in points}  # grid tag -> read-out step
        chosen, source = {}, {}  # (rule, grid tag) -> chosen settings / the chosen run's folder
        readout: dict = {}
        if "readout_lr" in self.select:
            readout = self._choose(
                {
                    _tag(p): [
                        self._selection(control, p, "readout_lr", v, {})
                        for v in self.select["readout_lr"]
                    ]
                    for p in points
                },
                launcher,
            )
            for tag, (best, _) in readout.items():
                base[tag] = {"readout_lr": best.value}
                chosen[(control, tag)] = dict(base[tag])
                if control == CONTROL:
                    source[(CONTROL, tag)] = best.config.out
        hidden: dict = {}
        if "lr" in self.select:
            hidden = self._choose(
                {
                    (rule, _tag(p)): [
                        self._selection(rule, p, "lr", v, base[_tag(p)]) for v in self.select["lr"]
                    ]
                    for p in points
                    for rule in self.hidden_rules()
                },
                launcher,
            )
        rows = []
        for p in points:
            tag = _tag(p)
            rows += readout[tag][1] if tag in readout else []
            for rule in self.hidden_rules():
                settings = dict(base[tag])
                if (rule, tag) in hidden:
                    best, part = hidden[(rule, tag)]
                    rows += part
                    settings = {**base[tag], "lr": best.value}
                    source[(rule, tag)] = best.config.out
                chosen[(rule, tag)] = settings
        table = pd.DataFrame(rows)
        if len(table):
            atomic_write_text(self.root / "selection.csv", table.to_csv(index=False))
        finals = self.finals(chosen)
        for f in finals:
            check_run_folder(f.config)
        for f in finals:
            run = source.get((f.rule, _tag(f.point)))
            if run and f.seed == self.exp.train.seeds[0]:
                _copy_run(Path(run), Path(f.config.out))
        results = _run(launcher, [f.config for f in finals])
        grids = [_tag(self._own(f.rule, f.point)).lstrip("_") or "-" for f in finals]
        self.cells = cells_table(finals, grids, results, self.select)
        atomic_write_text(self.root / "cells.csv", self.cells.to_csv(index=False))
        return [r.run_dir for r in results], table

    def _choose(self, groups: dict, launcher) -> dict:
        """Train every group's candidates as one batch; per group, its best candidate (highest
        validation accuracy, the first on a tie) and its rows of the selection table."""
        plans = [p for group in groups.values() for p in group]
        for p in plans:
            check_run_folder(p.config)
        results = iter(_run(launcher, [p.config for p in plans]))
        return {key: _best(group, [next(results) for _ in group]) for key, group in groups.items()}

    # ---- what --dry-run shows ----------------------------------------------------------------
    def plan(self) -> list[dict]:
        """Every cell the protocol will train, batch by batch: stage, rule, seed, grid point, run
        folder, the settings on top of the recipe (those chosen at run time as ``CHOSEN``) and
        what is decided at run time."""
        seed, control, rows = self.exp.train.seeds[0], self.control(), []
        rlrs, lrs = self.select.get("readout_lr", []), self.select.get("lr", [])
        picked = {"readout_lr": CHOSEN} if rlrs else {}

        def row(stage, rule, seed, point, settings, folder):
            extra = {**self._extra(rule, point), **settings}
            grid = _tag(self._own(rule, point)).lstrip("_") or "-"
            return dict(stage=stage, rule=rule, seed=seed, grid=grid, out=str(folder), set=extra)

        for point in self.exp.grid_points():
            for v in rlrs:
                p = self._selection(control, point, "readout_lr", v, {})
                rows.append(
                    row("readout_lr", control, seed, point, {"readout_lr": v}, p.config.out)
                )
        for point in self.exp.grid_points():
            for rule in self.hidden_rules() if lrs else []:
                for v in lrs:
                    settings = {**(picked or self._fixed_readout(point)), "lr": v}
                    folder = self.root / "select" / self._name(rule, point, seed, settings)
                    rows.append(row("lr", rule, seed, point, settings, folder))
        for f in self.finals({}):  # the settings run() chooses for them
            settings = dict(picked)
            if f.rule != CONTROL:
                settings = picked or self._fixed_readout(f.point)
                settings = {**settings, **({"lr": CHOSEN} if lrs else {})}
            rows.append(row("final", f.rule, f.seed, f.point, settings, f.config.out))
        unique: dict = {}  # a folder trains once (grid points a rule lacks share its runs)
        for r in rows:
            unique.setdefault(r["out"], r)
        rows = list(unique.values())
        for r in rows:
            r["decided"] = self._decided(r)
        return rows

    def _decided(self, r: dict) -> str:
        """What a cell of :meth:`plan` leaves to run time, in words."""
        seed, notes = self.exp.train.seeds[0], []
        if r["set"].get("readout_lr") == CHOSEN:
            notes.append(
                f"readout_lr: the best validation accuracy of {self.control()} at seed {seed} "
                f"among {self.select['readout_lr']}"
            )
        if r["set"].get("lr") == CHOSEN:
            notes.append(
                f"lr: the best validation accuracy of {r['rule']} at seed {seed} among "
                f"{self.select['lr']}"
            )
        chosen_run = r["rule"] != CONTROL and "lr" in self.select
        chosen_run = chosen_run or (r["rule"] == CONTROL and "readout_lr" in self.select)
        if r["stage"] == "final" and r["seed"] == seed and chosen_run:
            notes.append("copied from the chosen selection run")
        return "; ".join(notes)


CHOSEN = "CHOSEN"  # in --dry-run: a step size the protocol chooses at run time


def _run(launcher, configs: list[TrainConfig]) -> list:
    """Results of ``configs``, training each run folder once: grid points that a rule does not
    have share its runs, and two jobs must never train one folder at once."""
    first = {c.out: c for c in reversed(configs)}
    unique = list(dict.fromkeys(c.out for c in configs))
    results = dict(zip(unique, launcher.run_cells([first[out] for out in unique])))
    return [results[c.out] for c in configs]


def _best(plans: list[Planned], results: list) -> tuple[Planned, list[dict]]:
    """The candidate with the best validation accuracy and the selection table's rows."""
    scores = [r.val_acc for r in results]
    if any(s is None for s in scores):
        raise NmncError(
            "step-size selection needs a validation split; set val_examples > 0 in the "
            "recipe or in [train] run"
        )
    best = max(range(len(plans)), key=lambda i: (scores[i], -i))
    rows = [
        {
            "rule": p.rule,
            "grid": _tag(p.point).lstrip("_") or "-",
            "setting": p.stage,
            "value": p.value,
            "fixed": _tag(_chosen_of(p)).lstrip("_") or "-",
            "val_acc": r.val_acc,
            "selected": i == best,
            "run": str(r.run_dir),
        }
        for i, (p, r) in enumerate(zip(plans, results))
    ]
    return plans[best], rows


def cells_table(finals: list[Planned], grids: list[str], results: list, select: dict):
    """One row per final run: its rule, seed, grid point, step sizes, counters, accuracies, time,
    weights hash (the results table's ``checkpoint_hash``) and run folder."""
    from nmnc.checkpoint import load_checkpoint

    rows = []
    for f, grid, r in zip(finals, grids, results):
        c = f.config
        chosen = [k for k in SELECTABLE if k in select and (k == "readout_lr" or f.rule != CONTROL)]
        rows.append(
            {
                "rule": f.rule,
                "seed": f.seed,
                "grid": grid,
                "readout_lr": c.readout_lr or c.lr,
                "lr": c.lr,
                "chosen": " ".join(chosen) or "-",
                "steps": r.step,
                "total_steps": r.total_steps,
                "examples": r.examples,
                "perturbations": r.perturbations,
                "test_acc": r.test_acc,
                "val_acc": r.val_acc,
                "train_seconds": round(r.train_seconds, 2),
                "weights_hash": load_checkpoint(r.checkpoint).weights_hash,
                "run": str(r.run_dir),
            }
        )
    return pd.DataFrame(rows)


def _chosen_of(p: Planned) -> dict:
    """The settings a selection run held fixed (the read-out step in the hidden stage)."""
    rs = p.config.readout_lr
    return {"readout_lr": rs} if p.stage == "lr" and rs else {}


def _copy_run(source: Path, dest: Path) -> None:
    """Copy a finished selection run to its final folder (atomically: a half copy never stays)."""
    if (dest / "checkpoint.pt").exists() or not (source / "checkpoint.pt").exists():
        return
    tmp = dest.with_name(dest.name + ".copying")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
