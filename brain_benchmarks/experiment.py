"""Experiments as data: a grid of runs (one recipe, several rules and seeds), what to score and
which analyses to run, read from a TOML file and validated before any work.

Built-in experiments live in ``brain_benchmarks/experiments/`` (``default``, ``quick``); a user's
own file has the same sections (``[train]``, ``[score]``, ``[analysis]``). Unknown keys are
errors naming the key, its section and the closest known key.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from nmnc._registry import apply_overrides
from nmnc.config import TrainConfig
from nmnc.errors import NmncError, UnknownNameError
from nmnc.rules import RULES
from nmnc.training import get_recipe

BUILTIN = Path(__file__).with_name("experiments")


@dataclass(frozen=True)
class TrainPlan:
    recipe: str = "cnn-cpu"
    rules: tuple[str, ...] = ("bp", "vnc", "nmnc")
    seeds: tuple[int, ...] = (0,)
    set: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ScorePlan:
    benchmarks: tuple[str, ...] = (
        "Kriegeskorte2008.monkeyIT-rsa",
        "Kriegeskorte2008.humanIT-rsa",
        "Cowley2023.V4-pls",
    )
    baselines: tuple[str, ...] = ("pixels", "random:cnn")
    v4_sessions: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnalysisPlan:
    alignment_rules: tuple[str, ...] = ("bp", "nmnc")
    images: int = 500
    gradient_P: tuple[int, ...] = (1, 4, 16)
    gradient_k: tuple[int, ...] = (8, 32)
    gradient_batch: int = 16
    manifold_images: int = 512
    widths: tuple[float, ...] = (0.25, 0.5, 1.0)
    width_recipe: str = "cnn-width"
    width_set: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Experiment:
    name: str = "default"
    title: str = "nmnc comparison report"
    train: TrainPlan = field(default_factory=TrainPlan)
    score: ScorePlan = field(default_factory=ScorePlan)
    analysis: AnalysisPlan = field(default_factory=AnalysisPlan)

    def run_name(self, rule: str, seed: int) -> str:
        """Folder name of one run of the grid."""
        return f"{rule}_{get_recipe(self.train.recipe).model}_s{seed}"

    def run_configs(self, runs_dir: str | Path, data_root: str | None = None) -> list[TrainConfig]:
        """Every run of the grid, rules within seeds, as validated training configurations."""
        recipe = get_recipe(self.train.recipe)
        root = Path(runs_dir) / self.name
        return [
            recipe.config(rule, root / self.run_name(rule, seed), seed, data_root, self.train.set)
            for seed in self.train.seeds
            for rule in self.train.rules
        ]


SECTIONS = {"train": TrainPlan, "score": ScorePlan, "analysis": AnalysisPlan}


def _section(cls, body: dict, where: str):
    if not isinstance(body, dict):
        raise NmncError(
            f"{where}: [{cls.__name__}] must be a table of keys, got {type(body).__name__}"
        )
    plain = {k: v for k, v in body.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in body.items() if isinstance(v, dict)}
    obj = apply_overrides(cls(), plain, f"key in {where}")
    for key, value in tables.items():
        if key not in {f.name for f in dataclasses.fields(cls)}:
            raise UnknownNameError(
                f"key in {where}", key, [f.name for f in dataclasses.fields(cls)]
            )
        obj = dataclasses.replace(obj, **{key: dict(value)})
    return obj


def from_dict(data: dict, where: str = "experiment") -> Experiment:
    """An experiment from parsed TOML (validated: unknown keys, names and empty grids are
    errors)."""
    top = {k: v for k, v in data.items() if k not in SECTIONS}
    unknown = set(top) - {"name", "title"}
    if unknown:
        raise UnknownNameError(
            f"top-level key in {where}", sorted(unknown)[0], ["name", "title", *SECTIONS]
        )
    parts = {
        name: _section(cls, data.get(name, {}), f"{where} [{name}]")
        for name, cls in SECTIONS.items()
    }
    exp = Experiment(
        name=str(top.get("name", "custom")),
        title=str(top.get("title", "nmnc comparison report")),
        **parts,
    )
    check(exp, where)
    return exp


def check(exp: Experiment, where: str = "experiment") -> None:
    """Refuse an experiment that cannot run, before any work."""
    get_recipe(exp.train.recipe)
    get_recipe(exp.analysis.width_recipe)
    for rule in exp.train.rules:
        RULES.get(rule)
    if not exp.train.rules or not exp.train.seeds:
        raise NmncError(f"{where}: [train] needs at least one rule and one seed")
    if "bp" not in exp.train.rules:
        raise NmncError(
            f"{where}: [train] rules must include bp: "
            "it is the reference for the report and the analyses"
        )
    if not exp.name.replace("-", "").replace("_", "").isalnum():
        raise NmncError(
            f"{where}: name '{exp.name}' must be letters, digits, '-' or '_' (it names folders)"
        )
    if (
        exp.analysis.images < 1
        or exp.analysis.gradient_batch < 1
        or exp.analysis.manifold_images < 1
    ):
        raise NmncError(
            f"{where}: [analysis] images, gradient_batch and manifold_images must be at least 1"
        )
    exp.run_configs("unused")  # every run's settings are valid


def load_experiment(spec: str, overrides: dict | None = None) -> Experiment:
    """A built-in experiment by name or a TOML file, with ``section.key=value`` overrides."""
    path = BUILTIN / f"{spec}.toml" if (BUILTIN / f"{spec}.toml").exists() else Path(spec)
    if not path.is_file():
        names = sorted(p.stem for p in BUILTIN.glob("*.toml"))
        raise UnknownNameError("experiment", spec, names, "or give the path of a TOML file")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise NmncError(f"{path} is not valid TOML ({err})") from None
    for key, value in (overrides or {}).items():
        section, _, name = key.rpartition(".")
        if section not in SECTIONS:
            raise UnknownNameError(
                "--set section", section or key, SECTIONS, "write e.g. --set analysis.images=100"
            )
        data.setdefault(section, {})[name] = value
    return from_dict(data, str(path.name))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN.glob("*.toml"))
