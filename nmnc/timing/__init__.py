"""Timing: throughput, step cost and peak memory, printed as tables (never timed tests)."""

from .cost import CostConfig, cost
from .speed import EpochConfig, SpeedConfig, epoch, speed

__all__ = ["CostConfig", "EpochConfig", "SpeedConfig", "cost", "epoch", "speed"]
