"""Training recipes: named, declared once in ``recipes.toml``, read by every consumer.

A recipe is a model, a dataset and settings; :meth:`Recipe.config` turns it into the
:class:`~nmnc.config.TrainConfig` of one run for a rule and seed, with extra settings on top.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .._registry import Registry
from ..config import TrainConfig, build_config
from ..errors import NmncError, UnknownNameError

RECIPES = Registry("recipe", "run 'python -m nmnc.train --list' to see all recipes")
NOISE_FREE = ("bp", "readout")  # rules that ignore the `noise` settings


@dataclass(frozen=True)
class Recipe:
    """One training run declared as data: model, dataset, settings, and the extra settings
    of noise rules."""

    name: str
    model: str
    dataset: str = "cifar10"
    help: str = ""
    set: dict = field(default_factory=dict)  # settings for every rule (any --set key of nmnc.train)
    noise: dict = field(default_factory=dict)  # added for noise-correlation rules
    per_rule: dict = field(default_factory=dict)  # rule -> settings of that rule only (nmnc's k)

    def settings(self, rule: str, extra: dict | None = None) -> dict:
        """The ``--set`` pairs of a run of ``rule``: recipe, then noise settings, then the rule's
        own, then ``extra``."""
        noise = {} if rule in NOISE_FREE else self.noise
        return {**self.set, **noise, **self.per_rule.get(rule, {}), **(extra or {})}

    def config(
        self,
        rule: str,
        out: str | Path,
        seed: int = 0,
        data_root: str | None = None,
        extra: dict | None = None,
    ) -> TrainConfig:
        """The validated configuration of one run of this recipe."""
        base = TrainConfig(
            model=self.model,
            rule=rule,
            dataset=self.dataset,
            seed=seed,
            data_root=None if data_root is None else str(data_root),
            out=str(out),
        )
        return build_config(base, self.settings(rule, extra))


def flat_settings(table: dict, prefix: str = "") -> dict:
    """Nested TOML tables as dotted ``--set`` keys: ``{data: {seq_len: 50}}`` ->
    ``{"data.seq_len": 50}``; a model or rule setting that holds a table stays whole."""
    out = {}
    for key, value in table.items():
        if isinstance(value, dict) and (prefix or key == "data"):
            out.update(flat_settings(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _load(path: Path) -> None:
    data = tomllib.loads(path.read_text())
    allowed = {"model", "dataset", "help", "set", "noise", "per_rule"}
    for name, body in data.items():
        unknown = set(body) - allowed
        if unknown:
            raise UnknownNameError(
                f"recipe key in {path.name} [{name}]", sorted(unknown)[0], allowed
            )
        for part in ("set", "noise"):  # data = { seq_len = 50 } -> data.seq_len = 50
            if part in body:
                body[part] = flat_settings(body[part])
        RECIPES.add(name, Recipe(name=name, **body), body.get("help", ""))


def get_recipe(name: str) -> Recipe:
    """A registered recipe by name (unknown names list the known ones)."""
    return RECIPES.get(name).factory


def recipe_steps(recipe: Recipe, rule: str, train_size: int = 50_000) -> int:
    """Optimizer steps of one run (for time estimates), without loading any data."""
    cfg = recipe.config(rule, "unused")
    if cfg.steps:
        return cfg.steps
    n = cfg.train_examples or train_size
    if n < cfg.batch_size:
        raise NmncError(f"recipe {recipe.name}: batch {cfg.batch_size} exceeds its {n} examples")
    return max(1, int(round(cfg.epochs * (n // cfg.batch_size))))


_load(Path(__file__).with_name("recipes.toml"))
