"""What every benchmark shares: its info, its rows, the seeded halves of its stimuli, and the
:class:`Benchmark` base that commits a layer chosen on one half and scored on the other."""

from __future__ import annotations

import dataclasses
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .stimuli import Stimuli

Root = str | Path | None  # a data root folder (None: $NMNC_DATA_ROOT, else the default)
ALL = None
SELECT = 0
TEST = 1


@dataclass(frozen=True)
class BenchmarkInfo:
    """What a benchmark id promises before its data are loaded."""

    id: str
    version: int
    region: str  # 'IT', 'V4', ... ('behavior' for behavioural benchmarks)
    species: str


@dataclass
class Row:
    """One layer's score on a benchmark, before it becomes a row of the results table."""

    benchmark: str
    version: int
    layer: str
    committed: bool
    raw_score: float
    ci_low: float
    ci_high: float
    ceiling: float | None
    n_stimuli: int
    extra: dict = field(default_factory=dict)
    # the committed row's per-stimulus material (see brain_benchmarks.artefacts); not a column
    material: dict | None = field(default=None, repr=False, compare=False)
    # per-unit scores (neurons, voxels) as columns of equal length; saved beside the results
    units: dict | None = field(default=None, repr=False, compare=False)

    # a benchmark that normalises otherwise than raw / ceiling gives its score and interval here
    norm_score: float | None = None
    norm_low: float | None = None
    norm_high: float | None = None
    normalisation: str = ""  # how ``score`` is made from raw_score (set by __post_init__)

    def __post_init__(self):
        if not self.normalisation:
            self.normalisation = "raw/ceiling" if self.ceiling else "none"

    def _ceiled(self, v: float) -> float:
        return v / self.ceiling if self.ceiling else v

    @property
    def score(self) -> float:
        return self.norm_score if self.norm_score is not None else self._ceiled(self.raw_score)

    @property
    def interval(self) -> tuple[float, float]:
        """95% interval of ``score`` (ceiled like the score)."""
        if self.norm_score is not None:
            return self.norm_low, self.norm_high
        return self._ceiled(self.ci_low), self._ceiled(self.ci_high)


def halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of ``range(n)`` into two sorted halves (the first has ``n // 2``)."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])


def pick(n: int, half: int | None) -> np.ndarray:
    """Indices of all ``n`` stimuli (``half=ALL``) or of one half (``SELECT`` or ``TEST``)."""
    return np.arange(n) if half is ALL else halves(n)[half]


class Benchmark(ABC):
    """A set of stimuli with brain data, and how a model's features on them are scored.

    Subclasses say how one layer scores on all stimuli or on one half (``measure``) and how a layer
    is chosen (``selection_score``); ``score`` does the rest the same way for every benchmark.
    """

    kind: str  # 'rsa' or 'neural'

    def __init__(self, info: BenchmarkInfo):
        self.info = info
        self.id = info.id
        self.version = info.version
        self.region = info.region
        self.species = info.species

    @abstractmethod
    def sets(self) -> list[tuple[str, Stimuli]]:
        """The named stimulus sets whose features ``score`` needs."""

    def extract_options(self) -> dict:
        """Keyword arguments for ``extract`` (feature reduction this benchmark scores with)."""
        return {}

    @abstractmethod
    def by_layer(self, features: dict[str, dict[str, np.ndarray]]) -> dict:
        """Features per set and layer regrouped per layer, in the form ``measure`` takes."""

    @abstractmethod
    def measure(self, data, layer: str, half: int | None) -> Row:
        """The row of one layer on all stimuli (``ALL``) or on one half (``TEST``)."""

    @abstractmethod
    def selection_score(self, data, layer: str) -> float:
        """How well a layer does on the ``SELECT`` half; the best layer is committed."""

    def score(self, features: dict[str, dict[str, np.ndarray]]) -> list[Row]:
        """A row per layer on all stimuli, then the committed layer's row on the held-out half."""
        data = self.by_layer(features)
        rows = [self.measure(data[layer], layer, ALL) for layer in data]
        selection = {layer: self.selection_score(data[layer], layer) for layer in data}
        best = max(selection, key=selection.get)
        committed = self.measure(data[best], best, TEST)
        selected_on = f"{self.n_stimuli - committed.n_stimuli} stimuli"
        extra = {**committed.extra, "selected_on": selected_on, "selection": selection}
        extra["commit"] = best
        return rows + [dataclasses.replace(committed, committed=True, extra=extra)]

    def committed_material(self, features: dict[str, dict[str, np.ndarray]], layer: str) -> dict:
        """The per-stimulus material of ``layer`` committed (scored again on the held-out half
        only): how an artefact missing for an already-scored row is recovered."""
        data = self.by_layer(features)
        return self.measure(data[layer], layer, TEST).material

    @property
    def settings(self) -> dict:
        """What defines the score besides the data (recorded with every row)."""
        return {}

    def data_arrays(self) -> list[np.ndarray]:
        """The brain data the score compares with (hashed into :attr:`data_hash`)."""
        return []

    @property
    def data_hash(self) -> str:
        """A digest of the stimuli and brain data: a results row names the data it was scored
        on."""
        h = hashlib.sha256()
        for name, stim in self.sets():
            h.update(f"{name}:{stim.digest};".encode())
        for a in self.data_arrays():
            h.update(np.ascontiguousarray(a, np.float64).tobytes())
        return h.hexdigest()[:16]

    @property
    @abstractmethod
    def n_stimuli(self) -> int:
        """Stimuli in all sets together."""
