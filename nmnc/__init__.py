"""nmnc: train networks with backprop (BP), vanilla noise correlation (VNC) and neural manifold
noise correlation (NMNC), and analyse them.

The public API, one config dataclass and one function per stage::

    # nmnc.training.train: a fresh run
    from nmnc import TrainConfig, build_config, train_or_resume, get_recipe
    from nmnc import load_checkpoint, build_model, build_rule, MODELS, RULES, DATASETS, RECIPES
    from nmnc import AlignmentConfig, analyse_checkpoint, GradientConfig, gradient_quality
    from nmnc import WidthSweepConfig, width_sweep, EfficiencyConfig, sample_efficiency

Importing registers models, rules, datasets and recipes on first use and has no other side effects.
"""

from ._lazy import exports

__version__ = "0.1.0"

__getattr__, __all__ = exports(
    __name__,
    {
        "config": ["TrainConfig", "build_config"],
        "checkpoint": ["Checkpoint", "load_checkpoint"],
        "models": ["MODELS", "build_model"],
        "rules": ["RULES", "build_rule"],
        "data": ["DATASETS", "load_dataset"],
        "training": [
            "RECIPES",
            "Recipe",
            "Run",
            "TrainResult",
            "get_recipe",
            "resume",
            "train_or_resume",
        ],
        "analysis": [
            "AlignmentConfig",
            "EfficiencyConfig",
            "GradientConfig",
            "WidthSweepConfig",
            "analyse_checkpoint",
            "gradient_quality",
            "sample_efficiency",
            "width_sweep",
        ],
    },
)
