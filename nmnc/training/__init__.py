"""Training: the loop every rule shares (:class:`Run`), typed entry points and named recipes."""

from .recipes import RECIPES, Recipe, get_recipe
from .trainer import Run, TrainResult, config_from_checkpoint, resume, train, train_or_resume

__all__ = [
    "RECIPES",
    "Recipe",
    "Run",
    "TrainResult",
    "config_from_checkpoint",
    "get_recipe",
    "resume",
    "train",
    "train_or_resume",
]
