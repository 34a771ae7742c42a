"""RSA benchmarks: model RDMs compared with brain RDMs (rsatoolbox does the maths, in ``rsa``)."""

from __future__ import annotations

import numpy as np

from nmnc.errors import UnknownNameError

from . import rsa
from .base import SELECT, TEST, Benchmark, BenchmarkInfo, Row, pick
from .stimuli import Stimuli


class RSABenchmark(Benchmark):
    """Model RDMs (correlation distance) compared with brain RDMs; bootstrap over stimuli."""

    kind = "rsa"

    def __init__(
        self,
        info: BenchmarkInfo,
        stimuli: Stimuli,
        rdms: np.ndarray,
        method: str = "spearman",
        n_boot: int = 1000,
    ):
        super().__init__(info)
        if method not in rsa.METHODS:
            raise UnknownNameError("RSA method", method, rsa.METHODS)
        self.stimuli, self.rdms = stimuli, np.asarray(rdms, dtype=np.float64)
        self.method, self.n_boot = method, n_boot
        self._ceilings: dict = {}  # per half: the same for every model scored

    def sets(self) -> list[tuple[str, Stimuli]]:
        return [("all", self.stimuli)]

    @property
    def n_stimuli(self) -> int:
        return len(self.stimuli)

    def by_layer(self, features):
        return {layer: rsa.model_rdm(f) for layer, f in features["all"].items()}

    def _ceiling(self, half: int | None) -> tuple[float, float] | None:
        if half not in self._ceilings:
            idx = pick(self.n_stimuli, half)
            self._ceilings[half] = rsa.noise_ceiling(rsa.subset(self.rdms, idx), self.method)
        return self._ceilings[half]

    def measure(self, model_rdm, layer, half) -> Row:
        idx = pick(self.n_stimuli, half)
        m, b = rsa.subset(model_rdm, idx), rsa.subset(self.rdms, idx)
        raw = rsa.compare(m, b, self.method)
        lo, hi = rsa.bootstrap(m, b, self.method, self.n_boot)
        nc = self._ceiling(half)
        extra = {"method": self.method, **({"ceiling_low": nc[0]} if nc else {})}
        ceiling = nc[1] if nc else None
        material = None
        if half == TEST:  # what the report resamples: both RDMs on the held-out stimuli
            material = {
                "kind": "rsa",
                "method": self.method,
                "ceiling": np.nan if ceiling is None else ceiling,
                "stimuli": idx,
                "model_rdm": m,
                "brain_rdm": b.mean(0) if b.ndim == 3 else b,
            }
        return Row(
            self.id, self.version, layer, False, raw, lo, hi, ceiling, len(idx), extra, material
        )

    def selection_score(self, model_rdm, layer) -> float:
        idx = pick(self.n_stimuli, SELECT)
        return rsa.compare(rsa.subset(model_rdm, idx), rsa.subset(self.rdms, idx), self.method)
