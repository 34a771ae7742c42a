"""Analyses of trained networks: manifold dimension, Jacobian-manifold alignment, gradient quality,
width sweeps, sample efficiency and the NMNC defaults table. Each is a config dataclass and a plain
function."""

from .._lazy import exports

__getattr__, __all__ = exports(
    __name__,
    {
        "alignment": ["AlignmentConfig", "analyse_checkpoint", "layer_alignment"],
        "defaults": ["DefaultsConfig", "defaults_table"],
        "dimension": ["participation_ratio", "power_law", "spectrum_pr", "twonn"],
        "efficiency": ["EfficiencyConfig", "read_run", "sample_efficiency"],
        "gradient": ["GradientConfig", "gradient_quality", "gradient_summary"],
        "recurrent": [
            "RecurrentAlignmentConfig",
            "RecurrentGradientConfig",
            "recurrent_alignment",
            "recurrent_gradients",
        ],
        "width": ["WidthSweepConfig", "width_sweep"],
    },
)
