"""RSA benchmarks: model RDMs compared with brain RDMs (rsatoolbox does the maths, in ``rsa``).

A model's raw score is its mean comparison with each brain RDM (one for the built-in Kriegeskorte
benchmarks; one per subject or session for user-defined ones). With several RDMs the row's
``ceiling`` is the upper bound of rsatoolbox's noise ceiling, the best raw score any RDM reaches,
so the score (raw / ceiling) is at most 1; the lower bound is kept in ``extra`` with it. With one
RDM there is no ceiling and the score is the raw score.
"""

from __future__ import annotations

import numpy as np

from nmnc.errors import UnknownNameError

from . import rsa
from .base import SELECT, TEST, Benchmark, BenchmarkInfo, Row, pick
from .stimuli import Stimuli


class RSABenchmark(Benchmark):
    """Model RDMs (correlation distance) compared with brain RDMs (N, N) or (S, N, N)."""

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
        self.stimuli, self.rdms = stimuli, rsa.stack(rdms)  # (S, N, N)
        self.method, self.n_boot = method, n_boot
        self._ceilings: dict = {}  # per half: the same for every model scored

    @property
    def settings(self) -> dict:
        return {"method": self.method, "n_boot": self.n_boot, "subjects": int(len(self.rdms))}

    def data_arrays(self) -> list[np.ndarray]:
        return [self.rdms]

    def sets(self) -> list[tuple[str, Stimuli]]:
        return [("all", self.stimuli)]

    @property
    def n_stimuli(self) -> int:
        return len(self.stimuli)

    @property
    def subjects(self) -> int:
        """How many brain RDMs a model is compared with."""
        return len(self.rdms)

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
        lo, hi, how = rsa.interval(m, b, self.method, self.n_boot)
        nc = self._ceiling(half)
        ceiling = nc[1] if nc else None  # the upper bound (exact for Spearman and Pearson)
        extra = {
            "method": self.method,
            "subjects": self.subjects,
            "ceiling_low": nc[0] if nc else None,
            "ceiling_high": ceiling,
            "ci_method": how,
        }
        material = None
        if half == TEST:  # what the report resamples: the RDMs on the held-out stimuli
            material = {
                "kind": "rsa",
                "method": self.method,
                "ceiling": np.nan if ceiling is None else ceiling,
                "stimuli": idx,
                "model_rdm": m,
                "brain_rdm": b.mean(0),  # kept for artefacts read before brain_rdms
                **({"brain_rdms": b} if self.subjects > 1 else {}),
            }
        return Row(
            self.id, self.version, layer, False, raw, lo, hi, ceiling, len(idx), extra, material
        )

    def selection_score(self, model_rdm, layer) -> float:
        idx = pick(self.n_stimuli, SELECT)
        return rsa.compare(rsa.subset(model_rdm, idx), rsa.subset(self.rdms, idx), self.method)
