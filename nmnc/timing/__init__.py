"""Timing: throughput, step cost and peak memory, printed as tables (never timed tests)."""

from .cost import CostConfig, cost, forward_floor, step_speed
from .speed import EpochConfig, SpeedConfig, epoch, speed

__all__ = [
    "CostConfig",
    "EpochConfig",
    "SpeedConfig",
    "cost",
    "epoch",
    "forward_floor",
    "speed",
    "step_speed",
]
