"""Experiments as data: a grid of runs (one recipe; rules x settings x seeds), what to score and
which analyses to run, read from a TOML file and validated before any work.

Built-in experiments live in ``brain_benchmarks/experiments/`` (``default``, ``quick``); a user's
own file has the same sections (``[train]``, ``[score]``, ``[analysis]``). Unknown keys, values of
the wrong type, unknown names (recipes, rules, benchmarks, models, sessions) and settings a run
would refuse are all errors that name the file, the section and the key.
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from nmnc._registry import apply_overrides
from nmnc.config import TrainConfig
from nmnc.errors import NmncError, UnknownNameError
from nmnc.rules import RULES
from nmnc.training import get_recipe
from nmnc.training.recipes import flat_settings

from .recurrent import RecurrentPlan

BUILTIN = Path(__file__).with_name("experiments")


@dataclass(frozen=True)
class TrainPlan:
    """The grid of training runs: one recipe; every rule x grid point x seed."""

    recipe: str = "cnn-cpu"
    rules: tuple[str, ...] = ("bp", "vnc", "nmnc")
    seeds: tuple[int, ...] = (0,)
    run: dict = field(default_factory=dict)  # settings on top of the recipe for every run
    grid: dict = field(default_factory=dict)  # setting -> list of values; a run per combination
    # step sizes chosen on the validation split (see protocol.py): readout_lr and/or lr -> values
    select: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ScorePlan:
    """What the runs and baselines are scored on."""

    benchmarks: tuple[str, ...] = (
        "Kriegeskorte2008.monkeyIT-rsa",
        "Kriegeskorte2008.humanIT-rsa",
        "Cowley2023.V4-pls",
        "Cowley2023.V4-pls-raw",
    )
    baselines: tuple[str, ...] = ("pixels", "random:cnn")
    # sessions of Cowley2023.V4-pls-raw (no ceiling); empty = all nine. Cowley2023.V4-pls always
    # scores the session with single trials (210325), ceiled.
    v4_sessions: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnalysisPlan:
    """Which analyses run, on which runs, at what size."""

    alignment_rules: tuple[str, ...] = (
        "bp",
        "nmnc",
    )  # first run of each gets the alignment analysis
    images: int = 500
    gradient_P: tuple[int, ...] = (1, 4, 16)
    gradient_k: tuple[int, ...] = (8, 32)
    gradient_batch: int = 16
    gradient_feedback: tuple[str, ...] = ("example", "amortised")  # noise rules' feedback variants
    gradient_autocast: str = "none"  # 'bf16': the gradient table adds cos_fp32
    manifold_images: int = 512
    widths: tuple[float, ...] = (0.25, 0.5, 1.0)
    width_recipe: str = "cnn-width"
    width_run: dict = field(default_factory=dict)  # settings on top of the width recipe

    def gradient_config(self, checkpoint: str, out: str | None = None, **common):
        """The gradient-quality analysis this plan asks for, on ``checkpoint``."""
        from nmnc.analysis import GradientConfig

        return GradientConfig(
            checkpoint,
            out,
            P=self.gradient_P,
            k=self.gradient_k,
            batch_size=self.gradient_batch,
            manifold_images=self.manifold_images,
            feedback=self.gradient_feedback,
            autocast=self.gradient_autocast,
            **common,
        )


@dataclass(frozen=True)
class Experiment:
    """One experiment: a name (it names the output folders), a title and its three plans."""

    name: str = "default"
    title: str = "nmnc comparison report"
    note: str = ""  # shown in the report: what the budget is and what cutting it costs
    train: TrainPlan = field(default_factory=TrainPlan)
    score: ScorePlan = field(default_factory=ScorePlan)
    analysis: AnalysisPlan = field(default_factory=AnalysisPlan)
    recurrent: RecurrentPlan = field(default_factory=RecurrentPlan)  # '' recipe: none

    def grid_points(self) -> list[dict]:
        """Every combination of the grid's settings ({} when there is no grid)."""
        keys = sorted(self.train.grid)
        values = [self.train.grid[k] for k in keys]
        return [dict(zip(keys, combo)) for combo in itertools.product(*values)]

    def run_configs(self, runs_dir: str | Path, data_root: str | None = None) -> list[TrainConfig]:
        """Every run the experiment may train, validated: the step-size candidates of the
        selection stages, then the final runs (seeds, then grid points, then rules) at the
        recipe's step sizes (the protocol replaces those by the chosen ones).

        A ``run`` or grid setting a rule does not have (``P`` for ``bp``) is left out of that
        rule's runs, and the runs it would duplicate are trained once.
        """
        from .protocol import Protocol

        protocol = Protocol(self, runs_dir, data_root)
        return [p.config for p in protocol.candidates() + protocol.finals({})]


def _positive(value) -> bool:
    """Whether ``value`` reads as a positive finite number (a learning-rate candidate)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    return v > 0 and v != float("inf")


def _accepts(model: str, rule: str, key: str) -> bool:
    """Whether a run of ``rule`` on ``model`` has the setting ``key``."""
    from nmnc.config import TRAIN_KEYS
    from nmnc.models import MODELS

    if key.startswith("data."):  # the dataset's own settings: every run of the recipe has them
        return True
    scope, _, name = key.rpartition(".")
    fields = {
        "model": {f.name for f in dataclasses.fields(MODELS.get(model).settings)},
        "rule": {f.name for f in dataclasses.fields(RULES.get(rule).settings)},
        "train": set(TRAIN_KEYS),
    }
    return name in (fields[scope] if scope in fields else set().union(*fields.values()))


SECTIONS = {
    "train": TrainPlan,
    "score": ScorePlan,
    "analysis": AnalysisPlan,
    "recurrent": RecurrentPlan,
}


def _section(cls, body, where: str):
    if not isinstance(body, dict):
        raise NmncError(f"{where} must be a table of keys, got {type(body).__name__}")
    try:
        plan = apply_overrides(cls(), body, "key")
    except NmncError as err:
        raise NmncError(f"{where}: {err}") from None
    if cls in (TrainPlan, RecurrentPlan):  # grid/select values from the command line: "2,4"
        split = lambda d: {k: v.split(",") if isinstance(v, str) else v for k, v in d.items()}  # noqa: E731
        grid = {"grid": split(plan.grid)} if cls is TrainPlan else {}
        run = flat_settings(plan.run)  # run = { data = { seq_len = 50 } } -> data.seq_len
        plan = dataclasses.replace(plan, **grid, run=run, select=split(plan.select))
    return plan


def from_dict(data: dict, where: str = "experiment") -> Experiment:
    """An experiment from parsed TOML, validated before any work (see :func:`check`)."""
    top = {k: v for k, v in data.items() if k not in SECTIONS}
    unknown = set(top) - {"name", "title", "note"}
    if unknown:
        raise UnknownNameError(
            f"top-level key in {where}", sorted(unknown)[0], ["name", "title", "note", *SECTIONS]
        )
    parts = {
        name: _section(cls, data.get(name, {}), f"{where} [{name}]")
        for name, cls in SECTIONS.items()
    }
    exp = Experiment(
        name=str(top.get("name", "custom")),
        title=str(top.get("title", "nmnc comparison report")),
        note=str(top.get("note", "")).strip(),
        **parts,
    )
    check(exp, where)
    return exp


def _in(where: str, section: str, key: str, fn, *args):
    """Run a check; its one-line error gains the file, section and key it came from."""
    try:
        return fn(*args)
    except NmncError as err:
        raise NmncError(f"{where} [{section}] {key}: {err}") from None


def check_train(exp: Experiment, where: str, section: str = "train") -> None:
    """Refuse a training plan that cannot run (recipe, rules, seeds, run, grid, select)."""
    t = exp.train
    _in(where, section, "recipe", get_recipe, t.recipe)
    for rule in t.rules:
        _in(where, section, "rules", RULES.get, rule)
    if not t.rules or not t.seeds:
        raise NmncError(f"{where} [{section}]: give at least one rule and one seed")
    if "bp" not in t.rules:
        raise NmncError(
            f"{where} [{section}] rules: must include bp, the reference for the report and the "
            "analyses"
        )
    for key in t.run:
        if not any(_accepts(get_recipe(t.recipe).model, rule, key) for rule in t.rules):
            raise NmncError(
                f"{where} [{section}] run.{key}: no rule of this experiment has the setting '{key}'"
            )
    for key, values in t.grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise NmncError(
                f"{where} [{section}] grid.{key}: give a non-empty list of values, e.g. "
                f"{key} = [2, 4]"
            )
        if not any(_accepts(get_recipe(t.recipe).model, rule, key) for rule in t.rules):
            raise NmncError(
                f"{where} [{section}] grid.{key}: no rule of this experiment has the setting "
                f"'{key}'"
            )
    from .protocol import SELECTABLE

    for key, values in t.select.items():
        if key not in SELECTABLE:
            raise UnknownNameError(f"setting in {where} [{section}] select", key, SELECTABLE)
        if not isinstance(values, (list, tuple)) or not values or not all(map(_positive, values)):
            raise NmncError(
                f"{where} [{section}] select.{key}: give a non-empty list of positive numbers, "
                f"e.g. {key} = [0.01, 0.05]; got {values!r}"
            )
    configs = _in(where, section, "run/grid/select", exp.run_configs, "unused")
    if t.select and not all(c.val_examples > 0 for c in configs):
        raise NmncError(
            f"{where} [{section}] select: choosing step sizes needs a validation split; add "
            f"val_examples to [{section}] run (e.g. val_examples = 1000)"
        )


def check(exp: Experiment, where: str = "experiment") -> None:
    """Refuse an experiment that cannot run, before any work, with the key that is wrong."""
    from nmnc.analysis import WidthSweepConfig

    from .datasets import COWLEY_SESSIONS
    from .score import ScoreConfig
    from .score import check as check_scoring

    t, s, a = exp.train, exp.score, exp.analysis
    if not exp.name.replace("-", "").replace("_", "").isalnum():
        raise NmncError(
            f"{where}: name '{exp.name}' must be letters, digits, '-' or '_' (it names folders)"
        )
    check_train(exp, where)
    exp.recurrent.check(where)
    scoring = ScoreConfig(models=s.baselines or ("pixels",), benchmarks=s.benchmarks)
    _in(where, "score", "baselines/benchmarks", check_scoring, scoring)
    for session in s.v4_sessions:
        if session not in COWLEY_SESSIONS:
            raise UnknownNameError(
                f"session in {where} [score] v4_sessions", session, COWLEY_SESSIONS
            )
    for rule in a.alignment_rules:
        if rule not in t.rules:
            raise UnknownNameError(f"rule in {where} [analysis] alignment_rules", rule, t.rules)
    if a.images < 1:
        raise NmncError(f"{where} [analysis] images: must be at least 1, got {a.images}")
    _in(
        where,
        "analysis",
        "gradient_*",
        a.gradient_config,
        "unused",
    )
    _in(
        where,
        "analysis",
        "widths/width_*",
        WidthSweepConfig,
        "unused",
        a.widths,
        a.width_recipe,
        a.width_run,
    )


def load_experiment(spec: str, overrides: dict | None = None) -> Experiment:
    """A built-in experiment by name or a TOML file, with ``section.key=value`` overrides."""
    path = BUILTIN / f"{spec}.toml" if (BUILTIN / f"{spec}.toml").exists() else Path(spec)
    if not path.is_file():
        raise UnknownNameError(
            "experiment", spec, builtin_names(), "or give the path of a TOML file"
        )
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise NmncError(f"{path} is not valid TOML ({err})") from None
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        if section not in SECTIONS or not name:
            raise UnknownNameError(
                "--set section", section, SECTIONS, "write e.g. --set analysis.images=200"
            )
        data.setdefault(section, {})[name] = value
    return from_dict(data, path.name)


def experiment_flags(p, quick_help: str, work_help: str) -> None:
    """The flags that choose an experiment and its work folder (the main job and the grid)."""
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--experiment",
        default="default",
        help=f"built-in experiment ({', '.join(builtin_names())}) or a TOML file",
    )
    which.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--work", default="runs/main", metavar="DIR", help=work_help)


def builtin_listing() -> str:
    """Each built-in experiment's name and title, one per line (``--list``)."""
    return "\n".join(f"{name:10s} {load_experiment(name).title}" for name in builtin_names())


def builtin_names() -> list[str]:
    """Names of the experiments that ship with the package."""
    return sorted(p.stem for p in BUILTIN.glob("*.toml"))
