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
choices are written to ``<root>/selection.csv``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nmnc.config import TrainConfig
from nmnc.errors import NmncError
from nmnc.io import atomic_write_text
from nmnc.training import get_recipe, train_or_resume
from nmnc.training.trainer import check_run_folder

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

    def __init__(self, exp, work_dir: str | Path, data_root: str | None = None):
        self.exp, self.data_root = exp, data_root
        self.recipe = get_recipe(exp.train.recipe)
        self.root = Path(work_dir) / exp.name
        self.select = {k: [float(x) for x in v] for k, v in exp.train.select.items()}

    # ---- naming and configs ----------------------------------------------------------------
    def _config(self, rule: str, seed: int, point: dict, chosen: dict, folder: Path):
        from .experiment import _accepts

        t = self.exp.train
        own = {k: v for k, v in {**t.run, **point}.items() if _accepts(self.recipe.model, rule, k)}
        return self.recipe.config(rule, folder, seed, self.data_root, {**own, **chosen})

    def _name(self, rule: str, point: dict, seed: int, chosen: dict | None = None) -> str:
        from .experiment import _accepts

        own = {k: v for k, v in point.items() if _accepts(self.recipe.model, rule, k)}
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
        """Select, then train the final runs; returns their folders and the selection table."""
        rows = []
        chosen, source = {}, {}  # (rule, grid tag) -> chosen settings / the chosen run's folder
        for point in self.exp.grid_points():
            base: dict = self._fixed_readout(point)
            if "readout_lr" in self.select:
                best, part = self._choose(
                    [
                        self._selection(self.control(), point, "readout_lr", v, {})
                        for v in self.select["readout_lr"]
                    ],
                    progress,
                )
                rows += part
                base = {"readout_lr": best.value}
                chosen[(self.control(), _tag(point))] = dict(base)
                if self.control() == CONTROL:
                    source[(CONTROL, _tag(point))] = best.config.out
            for rule in self.hidden_rules():
                settings = dict(base)
                if "lr" in self.select:
                    best, part = self._choose(
                        [self._selection(rule, point, "lr", v, base) for v in self.select["lr"]],
                        progress,
                    )
                    rows += part
                    settings = {**base, "lr": best.value}
                    source[(rule, _tag(point))] = best.config.out
                chosen[(rule, _tag(point))] = settings
        table = pd.DataFrame(rows)
        if len(table):
            atomic_write_text(self.root / "selection.csv", table.to_csv(index=False))
        finals = self.finals(chosen)
        for f in finals:
            check_run_folder(f.config)
        dirs = []
        for f in finals:
            run = source.get((f.rule, _tag(f.point)))
            if run and f.seed == self.exp.train.seeds[0]:
                _copy_run(Path(run), Path(f.config.out))
            dirs.append(train_or_resume(f.config, progress).run_dir)
        return dirs, table

    def _choose(self, plans: list[Planned], progress: bool) -> tuple[Planned, list[dict]]:
        for p in plans:
            check_run_folder(p.config)
        results = [train_or_resume(p.config, progress) for p in plans]
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
