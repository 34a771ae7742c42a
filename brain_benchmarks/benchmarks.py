"""Benchmarks in a registry with Brain-Score-style ids (``<Dataset>.<Region>-<metric>``) and
versions.

Every benchmark, built-in or user-defined, is a :class:`Benchmark`: it names the stimulus sets to
extract (``sets()``) and scores every recorded layer on all stimuli; it then commits one layer to
its region, chosen on one half of the stimuli and scored on the other half (no double dipping).
``score`` is the raw score divided by the ceiling when one is known, else the raw score.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nmnc._registry import Registry
from nmnc.errors import DataError, UnknownNameError

from . import rsa
from .datasets import COWLEY_SESSIONS
from .stimuli import Stimuli, from_folder, from_zip

BENCHMARKS = Registry(
    "benchmark", "run 'python -m brain_benchmarks.score --list' to see all benchmarks"
)

# Which stimuli a score uses: all of them, the half that picks the layer, or the other half.
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

    def _ceiled(self, v: float) -> float:
        return v / self.ceiling if self.ceiling else v

    @property
    def score(self) -> float:
        return self._ceiled(self.raw_score)

    @property
    def interval(self) -> tuple[float, float]:
        """95% interval of ``score`` (ceiled like the score)."""
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
        best = max(data, key=lambda layer: self.selection_score(data[layer], layer))
        committed = self.measure(data[best], best, TEST)
        selected_on = f"{self.n_stimuli - committed.n_stimuli} stimuli"
        extra = {**committed.extra, "selected_on": selected_on}
        return rows + [dataclasses.replace(committed, committed=True, extra=extra)]

    def committed_material(self, features: dict[str, dict[str, np.ndarray]], layer: str) -> dict:
        """The per-stimulus material of ``layer`` committed (scored again on the held-out half
        only): how an artefact missing for an already-scored row is recovered."""
        data = self.by_layer(features)
        return self.measure(data[layer], layer, TEST).material

    @property
    @abstractmethod
    def n_stimuli(self) -> int:
        """Stimuli in all sets together."""


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


def split_half_reliability(trials: np.ndarray, n_splits: int = 20, seed: int = 0) -> np.ndarray:
    """Spearman-Brown corrected split-half reliability per neuron; trials (neurons, images,
    repeats), NaN = missing."""
    rng = np.random.default_rng(seed)
    neurons, images, reps = trials.shape
    out = np.zeros((n_splits, neurons))
    for s in range(n_splits):
        # shuffle repeats per image (NaNs spread over both halves)
        perm = np.argsort(rng.random((images, reps)), axis=1)
        shuffled = np.take_along_axis(trials, np.broadcast_to(perm, trials.shape), axis=2)
        first, second = np.nanmean(shuffled[..., ::2], 2), np.nanmean(shuffled[..., 1::2], 2)
        ok = ~(np.isnan(first) | np.isnan(second)).any(0)
        f = first[:, ok] - first[:, ok].mean(1, keepdims=True)
        g = second[:, ok] - second[:, ok].mean(1, keepdims=True)
        r = (f * g).sum(1) / np.sqrt((f**2).sum(1) * (g**2).sum(1))
        out[s] = 2 * r / (1 + r)
    return np.nanmean(out, 0)


class NeuralBenchmark(Benchmark):
    """Cross-validated PLS predictivity of each neuron, per session; neurons pooled (median)."""

    kind = "neural"

    # PLS (25 components) on 9 sessions x layers x splits is the slow part of scoring: features
    # wider than max_features get a seeded random projection, and splits are 90/10
    # cross-validation folds.
    def __init__(
        self, info: BenchmarkInfo, sessions: list[dict], splits: int = 3, max_features: int = 256
    ):
        super().__init__(info)
        self.sessions, self.splits, self.max_features = sessions, splits, max_features
        self._ceiling: float | None | bool = False  # False: not computed yet

    def sets(self) -> list[tuple[str, Stimuli]]:
        return [(s["session"], s["stimuli"]) for s in self.sessions]

    def extract_options(self) -> dict:
        return {"max_features": self.max_features}

    @property
    def n_stimuli(self) -> int:
        return sum(len(s["stimuli"]) for s in self.sessions)

    def ceiling(self) -> float | None:
        """Median split-half reliability over neurons of sessions with single trials (None
        without)."""
        if self._ceiling is False:
            rel = [
                split_half_reliability(s["trials"])
                for s in self.sessions
                if s.get("trials") is not None
            ]
            self._ceiling = float(np.nanmedian(np.concatenate(rel))) if rel else None
        return self._ceiling

    def by_layer(self, features):
        layers = list(next(iter(features.values())))
        return {layer: {s: features[s][layer] for s in features} for layer in layers}

    def _pooled(self, feats: dict, half: int | None, keep: bool = False) -> tuple:
        """Per-neuron predictivity pooled over sessions, the number of stimuli it used, and with
        ``keep`` each session's held-out predictions (name, stimuli, splits)."""
        from .artefacts import pls_heldout
        from .brainscore_adapter import pls_per_neuron

        per_neuron, n, kept = [], 0, []
        for s in self.sessions:
            X, Y = np.asarray(feats[s["session"]]), s["responses"]
            idx = pick(len(Y), half)
            ids = [s["stimuli"].ids[i] for i in idx]
            if keep:
                r, splits = pls_heldout(X[idx], Y[idx], ids, self.splits)
                kept.append((s["session"], len(idx), splits))
            else:
                r = pls_per_neuron(X[idx], Y[idx], ids, splits=self.splits)
            per_neuron.append(r)
            n += len(idx)
        return np.concatenate(per_neuron), n, kept

    def measure(self, feats, layer, half) -> Row:
        from .artefacts import neural_material

        r, n, kept = self._pooled(feats, half, keep=half == TEST)
        rng = np.random.default_rng(0)
        boots = [np.nanmedian(rng.choice(r, len(r))) for _ in range(1000)]  # bootstrap over neurons
        lo, hi = np.percentile(boots, [2.5, 97.5])
        extra = {
            "neurons": len(r),
            "sessions": len(self.sessions),
            "max_features": self.max_features,
            "splits": self.splits,
        }
        return Row(
            self.id,
            self.version,
            layer,
            False,
            float(np.nanmedian(r)),
            float(lo),
            float(hi),
            self.ceiling(),
            n,
            extra,
            neural_material(kept, self.ceiling()) if kept else None,
        )

    def selection_score(self, feats, layer) -> float:
        return float(np.nanmedian(self._pooled(feats, SELECT)[0]))


# ---- built-in benchmarks ---------------------------------------------------------------------
@dataclass(frozen=True)
class RSASettings:
    """Options of the built-in RSA benchmarks."""

    method: str = "spearman"  # 'spearman', 'kendall' (tau-a) or 'pearson'
    n_boot: int = 1000  # bootstrap resamples of stimuli for the 95% interval


@dataclass(frozen=True)
class V4Settings:
    """Options of the built-in V4 benchmark."""

    sessions: tuple[str, ...] = tuple(COWLEY_SESSIONS)
    splits: int = 3  # cross-validation folds of the PLS fit
    max_features: int = 256  # wider layers get a seeded random projection to this many features


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
    BenchmarkInfo("Cowley2023.V4-pls", 1, "V4", "macaque"),
    V4Settings,
    "macaque V4, 9 sessions; PLS predictivity (Brain-Score metric)",
)
def cowley_v4(info: BenchmarkInfo, root: Root, download: bool, s: V4Settings) -> NeuralBenchmark:
    """Macaque V4 responses to natural images (the chosen sessions)."""
    from .datasets import cowley2023

    for session in s.sessions:
        if session not in COWLEY_SESSIONS:
            raise UnknownNameError(f"{info.id} session", session, COWLEY_SESSIONS)
    sessions = cowley2023(root, download, info.id, list(s.sessions))
    return NeuralBenchmark(info, sessions, s.splits, s.max_features)


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


# ---- user-defined benchmarks -----------------------------------------------------------------
def _rdm_stack(arr: np.ndarray, n: int, where: str) -> np.ndarray:
    from scipy.spatial.distance import squareform

    m = n * (n - 1) // 2
    if arr.ndim == 1:
        arr = arr[None]
    if (
        arr.ndim == 2 and arr.shape[1] == m and arr.shape != (n, n)
    ):  # condensed vectors, one per row
        arr = np.stack([squareform(v, checks=False) for v in arr])
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise DataError(
            f"{where}: RDMs must be N x N, S x N x N, or condensed vectors of N(N-1)/2; "
            f"got shape {arr.shape}"
        )
    if arr.shape[1] != n:
        raise DataError(
            f"{where}: RDMs are {arr.shape[1]} x {arr.shape[2]} but there are {n} stimuli"
        )
    if np.isnan(arr).any():
        raise DataError(f"{where}: RDMs contain NaN; fill or drop those stimuli")
    if not np.allclose(arr, arr.transpose(0, 2, 1), atol=1e-8):
        raise DataError(f"{where}: RDMs are not symmetric")
    return arr


def _read_meta(folder: Path) -> dict:
    meta_path = folder / "benchmark.json"
    if not meta_path.exists():
        raise DataError(
            f"{folder}: no benchmark.json; a benchmark folder needs benchmark.json, stimuli/ or "
            "stimuli.zip, and rdms.npy or responses.npy"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{meta_path} is not valid JSON ({err})") from None
    missing = [k for k in ("name", "region", "species", "kind") if k not in meta]
    if missing:
        raise DataError(
            f"{meta_path} lacks {', '.join(missing)}; required: name, region, species, "
            "kind ('rsa' or 'neural')"
        )
    if meta["kind"] not in ("rsa", "neural"):
        raise DataError(f"{meta_path}: kind must be 'rsa' or 'neural', got {meta['kind']!r}")
    return meta


def from_folder_spec(path: str | Path) -> Benchmark:
    """A user-defined benchmark from a folder (format in the README)."""
    folder = Path(path)
    meta = _read_meta(folder)
    order = meta.get("stimuli")
    if (folder / "stimuli").is_dir():
        stimuli = from_folder(folder / "stimuli", order, meta["name"])
    elif (folder / "stimuli.zip").exists():
        stimuli = from_zip(folder / "stimuli.zip", order, meta["name"])
    else:
        raise DataError(f"{folder}: no stimuli/ folder or stimuli.zip")
    n = len(stimuli)
    info = BenchmarkInfo(meta["name"], int(meta.get("version", 1)), meta["region"], meta["species"])
    if meta["kind"] == "rsa":
        f = folder / "rdms.npy"
        if not f.exists():
            raise DataError(
                f"{folder}: kind 'rsa' needs rdms.npy "
                "(one N x N RDM, S x N x N, or condensed vectors)"
            )
        rdms = _rdm_stack(np.load(f), n, str(f))
        return RSABenchmark(info, stimuli, rdms, meta.get("method", "spearman"))
    f = folder / "responses.npy"
    if not f.exists():
        raise DataError(
            f"{folder}: kind 'neural' needs responses.npy "
            "(neurons x images, or neurons x images x repeats)"
        )
    resp = np.load(f).astype(np.float64)
    if resp.ndim not in (2, 3) or resp.shape[1] != n:
        raise DataError(f"{f}: expected neurons x {n} images (x repeats), got shape {resp.shape}")
    trials = resp if resp.ndim == 3 else None
    mean = np.nanmean(resp, 2) if trials is not None else resp
    if np.isnan(mean).any():
        where = (
            " for every repeat of some image"
            if trials is not None
            else "; NaN is allowed only for missing repeats (neurons x images x repeats)"
        )
        raise DataError(f"{f}: NaN responses{where}")
    session = {"session": meta["name"], "stimuli": stimuli, "responses": mean.T, "trials": trials}
    return NeuralBenchmark(
        info, [session], int(meta.get("splits", 3)), int(meta.get("max_features", 256))
    )


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
        return from_folder_spec(spec)
    known = BENCHMARKS.names() + sorted(PUBLIC_INFO)
    raise UnknownNameError("benchmark", spec, known, "or give a benchmark folder")
