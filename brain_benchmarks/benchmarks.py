"""Benchmarks in a registry with Brain-Score-style ids (``<Dataset>.<Region>-<metric>``) and
versions.

Every benchmark, built-in or user-defined, is a :class:`Benchmark`: it names the stimulus sets to
extract (``sets()``) and scores every recorded layer on all stimuli; it then commits one layer to
its region, chosen on one half of the stimuli and scored on the other half (no double dipping).
How ``score`` is made from the raw score is named in each row's ``normalisation`` (RSA: raw /
ceiling; neural predictivity: Brain-Score's r**2 / ceiling, or r**2 without a ceiling).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nmnc._registry import Registry
from nmnc.errors import DataError, UnknownNameError

from .base import ALL, SELECT, TEST, Benchmark, BenchmarkInfo, Root, Row, halves, pick
from .datasets import COWLEY_SESSIONS
from .folder import from_folder_spec
from .neural import NeuralBenchmark, split_half_reliability
from .similarity import RSABenchmark

__all__ = [
    "ALL",
    "SELECT",
    "TEST",
    "Benchmark",
    "BenchmarkInfo",
    "Row",
    "halves",
    "pick",
    "NeuralBenchmark",
    "RSABenchmark",
    "split_half_reliability",
    "from_folder_spec",
    "BENCHMARKS",
    "PUBLIC_INFO",
    "benchmark_info",
    "list_lines",
    "load_benchmark",
]

BENCHMARKS = Registry(
    "benchmark", "run 'python -m brain_benchmarks.score --list' to see all benchmarks"
)


# ---- built-in benchmarks ---------------------------------------------------------------------
@dataclass(frozen=True)
class RSASettings:
    """Options of the built-in RSA benchmarks."""

    method: str = "spearman"  # 'spearman', 'kendall' (tau-a) or 'pearson'
    n_boot: int = 1000  # bootstrap resamples of stimuli for the 95% interval


CEILED_SESSIONS = ("210325",)  # the Cowley sessions with single trials (a ceiling)


@dataclass(frozen=True)
class V4Settings:
    """Options of the built-in V4 benchmarks."""

    sessions: tuple[str, ...] = CEILED_SESSIONS
    splits: int = 5  # k-fold cross-validation of the PLS fit (every image tested once)
    max_features: int = 1000  # wider layers: their first principal components (0: no PCA)
    pca_images: int = 1000  # CIFAR-10 test images the PCA is fitted on


@dataclass(frozen=True)
class V4RawSettings(V4Settings):
    """Options of the built-in V4 benchmark without a ceiling (every session)."""

    sessions: tuple[str, ...] = tuple(COWLEY_SESSIONS)


def builtin(info: BenchmarkInfo, settings: type, help: str) -> Callable:
    """Register ``factory(info, root, download, settings) -> Benchmark`` under ``info.id``."""

    def wrap(factory):
        factory.info = info
        return BENCHMARKS.register(info.id, settings, help)(factory)

    return wrap


@builtin(
    BenchmarkInfo("Kriegeskorte2008.monkeyIT-rsa", 1, "IT", "macaque"),
    RSASettings,
    "92 images; monkey IT RDM (674 neurons); Spearman",
)
def monkey_it(info: BenchmarkInfo, root: Root, download: bool, s: RSASettings) -> RSABenchmark:
    """The 92 images against the monkey IT RDM."""
    return _kriegeskorte(info, root, download, s, "monkey")


@builtin(
    BenchmarkInfo("Kriegeskorte2008.humanIT-rsa", 1, "IT", "human"),
    RSASettings,
    "92 images; human IT fMRI RDM (316 voxels); Spearman",
)
def human_it(info: BenchmarkInfo, root: Root, download: bool, s: RSASettings) -> RSABenchmark:
    """The 92 images against the human IT (fMRI) RDM."""
    return _kriegeskorte(info, root, download, s, "human")


def _kriegeskorte(info: BenchmarkInfo, root: Root, download: bool, s: RSASettings, rdm: str):
    from .datasets import kriegeskorte2008

    d = kriegeskorte2008(root, download, info.id)
    return RSABenchmark(info, d["stimuli"], d[rdm], s.method, s.n_boot)


@builtin(
    BenchmarkInfo("Cowley2023.V4-pls", 2, "V4", "macaque"),
    V4Settings,
    "macaque V4, the session with single trials; PLS r**2 / ceiling (Brain-Score's definition)",
)
def cowley_v4(info: BenchmarkInfo, root: Root, download: bool, s: V4Settings) -> NeuralBenchmark:
    """Macaque V4 responses to natural images, ceiled per session (sessions with single trials)."""
    return _cowley(info, root, download, s)


@builtin(
    BenchmarkInfo("Cowley2023.V4-pls-raw", 1, "V4", "macaque"),
    V4RawSettings,
    "macaque V4, 9 sessions, no ceiling; PLS r**2 pooled over sessions",
)
def cowley_v4_raw(
    info: BenchmarkInfo, root: Root, download: bool, s: V4RawSettings
) -> NeuralBenchmark:
    """Macaque V4 responses to natural images, every chosen session, raw (no single trials)."""
    return _cowley(info, root, download, s, trials=False)


def _cowley(info: BenchmarkInfo, root: Root, download: bool, s: V4Settings, trials=True):
    from .datasets import cowley2023, pca_images

    for session in s.sessions:
        if session not in COWLEY_SESSIONS:
            raise UnknownNameError(f"{info.id} session", session, COWLEY_SESSIONS)
        if trials and session not in CEILED_SESSIONS:
            raise DataError(
                f"{info.id}: session {session} has no single trials, so no ceiling; this benchmark "
                f"takes {', '.join(CEILED_SESSIONS)} (score other sessions with "
                "Cowley2023.V4-pls-raw)"
            )
    sessions = cowley2023(root, download, info.id, list(s.sessions))
    if not trials:
        sessions = [{**x, "trials": None} for x in sessions]
    basis = pca_images(root, s.pca_images) if s.max_features else None
    return NeuralBenchmark(
        info, sessions, splits=s.splits, max_features=s.max_features, pca_images=basis
    )


# Public Brain-Score benchmarks, scored through brainscore_adapter (their data in $BRAINIO_HOME).
PUBLIC_INFO = {
    i.id: i
    for i in (
        BenchmarkInfo("FreemanZiemba2013public.V1-pls", 1, "V1", "macaque"),
        BenchmarkInfo("FreemanZiemba2013public.V2-pls", 1, "V2", "macaque"),
        BenchmarkInfo("MajajHong2015public.V4-pls", 1, "V4", "macaque"),
        BenchmarkInfo("MajajHong2015public.IT-pls", 1, "IT", "macaque"),
        # i2n against the pooled human (MTurk) object-recognition behaviour on the 'objectome'
        # images
        BenchmarkInfo("Rajalingham2018public-i2n", 1, "behavior", "human"),
    )
}


def benchmark_info(spec: str) -> BenchmarkInfo | None:
    """Id, version, region and species of a built-in or public benchmark id (None otherwise)."""
    if spec in BENCHMARKS:
        return BENCHMARKS.get(spec).factory.info
    return PUBLIC_INFO.get(spec)


def list_lines() -> list[str]:
    """One line per benchmark id: built-in ones, then public Brain-Score ones."""
    lines = []
    for name in BENCHMARKS.names():
        lines.append(f"{name:34s} {BENCHMARKS.get(name).help}")
    for name, i in sorted(PUBLIC_INFO.items()):
        lines.append(
            f"{name:34s} Brain-Score public benchmark, {i.species} {i.region} "
            "(needs its data in $BRAINIO_HOME)"
        )
    return lines


def load_benchmark(
    spec: str, root: str | Path | None = None, download: bool = False, **options
) -> Benchmark:
    """A registered id (``options`` are its settings), or a folder holding a user-defined benchmark.

    Public Brain-Score ids are not loaded here (``brain_benchmarks.score`` runs them through
    Brain-Score); an unknown name is an error listing every id and the closest match.
    """
    if spec in BENCHMARKS:
        entry = BENCHMARKS.get(spec)
        return entry.factory(entry.factory.info, root, download, BENCHMARKS.settings(spec, options))
    if Path(spec).is_dir():
        if options:
            raise DataError(
                f"{spec}: a benchmark folder takes its settings from its benchmark.json, "
                f"not options ({', '.join(options)})"
            )
        return from_folder_spec(spec, root)
    known = BENCHMARKS.names() + sorted(PUBLIC_INFO)
    raise UnknownNameError("benchmark", spec, known, "or give a benchmark folder")
