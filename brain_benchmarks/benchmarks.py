"""Benchmarks in a registry with Brain-Score-style ids (``<Dataset>.<Region>-<metric>``) and versions.

A benchmark scores a model on every recorded layer (all stimuli) and commits one layer to its region:
the layer is chosen on one half of the stimuli and scored on the other half (no double dipping).
``score`` is the raw score divided by the ceiling when one is known, else the raw score.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nmnc._registry import Registry
from nmnc.errors import DataError

from . import rsa
from .stimuli import Stimuli, from_folder, from_zip

BENCHMARKS = Registry("benchmark")


@dataclass
class Row:
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
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


class RSABenchmark:
    kind = "rsa"

    def __init__(self, id: str, version: int, region: str, species: str, stimuli: Stimuli, rdms: np.ndarray,
                 method: str = "spearman", n_boot: int = 1000):
        self.id, self.version, self.region, self.species = id, version, region, species
        self.stimuli, self.rdms, self.method, self.n_boot = stimuli, np.asarray(rdms, dtype=np.float64), method, n_boot

    def sets(self):
        return [("all", self.stimuli)]

    def _one(self, model_rdm, idx, layer, committed, nc, extra=None) -> Row:
        m, b = rsa.subset(model_rdm, idx), rsa.subset(self.rdms, idx)
        raw = rsa.compare(m, b, self.method)
        lo, hi = rsa.bootstrap(m, b, self.method, self.n_boot)
        return Row(self.id, self.version, layer, committed, raw, lo, hi, nc[1] if nc else None, len(idx),
                   {"method": self.method, **({"ceiling_low": nc[0]} if nc else {}), **(extra or {})})

    def score(self, features: dict[str, dict[str, np.ndarray]]) -> list[Row]:
        feats = features["all"]
        rdms = {layer: rsa.model_rdm(f) for layer, f in feats.items()}
        N = len(self.stimuli)
        ceiling = lambda idx: rsa.noise_ceiling(rsa.subset(self.rdms, idx), self.method)  # noqa: E731
        everything = np.arange(N)
        nc_all = ceiling(everything)
        rows = [self._one(r, everything, layer, False, nc_all) for layer, r in rdms.items()]
        a, b = halves(N)
        pick = max(rdms, key=lambda layer: rsa.compare(rsa.subset(rdms[layer], a), rsa.subset(self.rdms, a), self.method))
        rows.append(self._one(rdms[pick], b, pick, True, ceiling(b), {"selected_on": f"{len(a)} stimuli"}))
        return rows


def split_half_reliability(trials: np.ndarray, n_splits: int = 20, seed: int = 0) -> np.ndarray:
    """Spearman-Brown corrected split-half reliability per neuron; trials (neurons, images, repeats), NaN = missing."""
    rng = np.random.default_rng(seed)
    neurons, images, reps = trials.shape
    out = np.zeros((n_splits, neurons))
    for s in range(n_splits):
        perm = np.argsort(rng.random((images, reps)), axis=1)  # shuffle repeats per image (NaNs spread)
        shuffled = np.take_along_axis(trials, np.broadcast_to(perm, trials.shape), axis=2)
        first, second = np.nanmean(shuffled[..., ::2], 2), np.nanmean(shuffled[..., 1::2], 2)
        ok = ~(np.isnan(first) | np.isnan(second)).any(0)
        f, g = first[:, ok] - first[:, ok].mean(1, keepdims=True), second[:, ok] - second[:, ok].mean(1, keepdims=True)
        r = (f * g).sum(1) / np.sqrt((f ** 2).sum(1) * (g ** 2).sum(1))
        out[s] = 2 * r / (1 + r)
    return np.nanmean(out, 0)


class NeuralBenchmark:
    """Cross-validated PLS predictivity of each neuron, per session; neurons pooled (median)."""

    kind = "neural"

    # PLS (25 components) on 9 sessions x layers x splits is the slow part of scoring: features wider
    # than max_features get a seeded random projection, and splits are 90/10 cross-validation folds.
    def __init__(self, id: str, version: int, region: str, species: str, sessions: list[dict], splits: int = 3,
                 max_features: int = 256):
        self.id, self.version, self.region, self.species = id, version, region, species
        self.sessions, self.splits, self.max_features = sessions, splits, max_features

    def sets(self):
        return [(s["session"], s["stimuli"]) for s in self.sessions]

    @property
    def n_stimuli(self) -> int:
        return sum(len(s["stimuli"]) for s in self.sessions)

    def ceiling(self) -> float | None:
        rel = [split_half_reliability(s["trials"]) for s in self.sessions if s.get("trials") is not None]
        return float(np.nanmedian(np.concatenate(rel))) if rel else None

    def _pooled(self, features, layer, which) -> np.ndarray:
        from .brainscore_adapter import pls_per_neuron

        per_neuron = []
        for s in self.sessions:
            X, Y = np.asarray(features[s["session"]][layer]), s["responses"]
            idx = np.arange(len(Y)) if which is None else halves(len(Y))[which]
            ids = [s["stimuli"].ids[i] for i in idx]
            per_neuron.append(pls_per_neuron(X[idx], Y[idx], ids, splits=self.splits))
        return np.concatenate(per_neuron)

    def _row(self, r: np.ndarray, layer: str, committed: bool, n: int, ceiling) -> Row:
        rng = np.random.default_rng(0)
        boots = [np.nanmedian(rng.choice(r, len(r))) for _ in range(1000)]  # bootstrap over neurons
        lo, hi = np.percentile(boots, [2.5, 97.5])
        return Row(self.id, self.version, layer, committed, float(np.nanmedian(r)), float(lo), float(hi), ceiling, n,
                   {"neurons": int(len(r)), "sessions": len(self.sessions), "max_features": self.max_features, "splits": self.splits})

    def score(self, features) -> list[Row]:
        layers = list(next(iter(features.values())))
        ceiling = self.ceiling()
        rows = [self._row(self._pooled(features, layer, None), layer, False, self.n_stimuli, ceiling) for layer in layers]
        pick = max(layers, key=lambda layer: np.nanmedian(self._pooled(features, layer, 0)))
        rows.append(self._row(self._pooled(features, pick, 1), pick, True, self.n_stimuli - self.n_stimuli // 2, ceiling))
        return rows


# ---- built-in benchmarks ---------------------------------------------------------------------
@dataclass(frozen=True)
class NoSettings:
    pass


@BENCHMARKS.register("Kriegeskorte2008.monkeyIT-rsa", NoSettings, help="92 images; monkey IT RDM (674 neurons); Spearman")
def monkey_it(root=None, download=False, method="spearman"):
    from .datasets import kriegeskorte2008

    d = kriegeskorte2008(root, download, "Kriegeskorte2008.monkeyIT-rsa")
    return RSABenchmark("Kriegeskorte2008.monkeyIT-rsa", 1, "IT", "macaque", d["stimuli"], d["monkey"], method)


@BENCHMARKS.register("Kriegeskorte2008.humanIT-rsa", NoSettings, help="92 images; human IT fMRI RDM (316 voxels); Spearman")
def human_it(root=None, download=False, method="spearman"):
    from .datasets import kriegeskorte2008

    d = kriegeskorte2008(root, download, "Kriegeskorte2008.humanIT-rsa")
    return RSABenchmark("Kriegeskorte2008.humanIT-rsa", 1, "IT", "human", d["stimuli"], d["human"], method)


@BENCHMARKS.register("Cowley2023.V4-pls", NoSettings, help="macaque V4, 9 sessions; PLS predictivity (Brain-Score metric)")
def cowley_v4(root=None, download=False, method=None, sessions=None):
    from .datasets import cowley2023

    return NeuralBenchmark("Cowley2023.V4-pls", 1, "V4", "macaque", cowley2023(root, download, "Cowley2023.V4-pls", sessions))


# ---- user-defined benchmarks -----------------------------------------------------------------
def _rdm_stack(arr: np.ndarray, n: int, where: str) -> np.ndarray:
    from scipy.spatial.distance import squareform

    m = n * (n - 1) // 2
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim == 2 and arr.shape[1] == m and arr.shape != (n, n):  # condensed vectors, one per row
        arr = np.stack([squareform(v, checks=False) for v in arr])
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise DataError(f"{where}: RDMs must be N x N, S x N x N, or condensed vectors of N(N-1)/2; got shape {arr.shape}")
    if arr.shape[1] != n:
        raise DataError(f"{where}: RDMs are {arr.shape[1]} x {arr.shape[2]} but there are {n} stimuli")
    if np.isnan(arr).any():
        raise DataError(f"{where}: RDMs contain NaN; fill or drop those stimuli")
    if not np.allclose(arr, arr.transpose(0, 2, 1), atol=1e-8):
        raise DataError(f"{where}: RDMs are not symmetric")
    return arr


def from_folder_spec(path: str | Path):
    """A user-defined benchmark from a folder (format in the README)."""
    folder = Path(path)
    meta_path = folder / "benchmark.json"
    if not meta_path.exists():
        raise DataError(f"{folder}: no benchmark.json; a benchmark folder needs benchmark.json, stimuli/ or stimuli.zip, and rdms.npy or responses.npy")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{meta_path} is not valid JSON ({err})") from None
    missing = [k for k in ("name", "region", "species", "kind") if k not in meta]
    if missing:
        raise DataError(f"{meta_path} lacks {', '.join(missing)}; required: name, region, species, kind ('rsa' or 'neural')")
    if meta["kind"] not in ("rsa", "neural"):
        raise DataError(f"{meta_path}: kind must be 'rsa' or 'neural', got {meta['kind']!r}")
    order = meta.get("stimuli")
    if (folder / "stimuli").is_dir():
        stimuli = from_folder(folder / "stimuli", order, meta["name"])
    elif (folder / "stimuli.zip").exists():
        stimuli = from_zip(folder / "stimuli.zip", order, meta["name"])
    else:
        raise DataError(f"{folder}: no stimuli/ folder or stimuli.zip")
    n = len(stimuli)
    version = int(meta.get("version", 1))
    if meta["kind"] == "rsa":
        f = folder / "rdms.npy"
        if not f.exists():
            raise DataError(f"{folder}: kind 'rsa' needs rdms.npy (one N x N RDM, S x N x N, or condensed vectors)")
        rdms = _rdm_stack(np.load(f), n, str(f))
        return RSABenchmark(meta["name"], version, meta["region"], meta["species"], stimuli, rdms, meta.get("method", "spearman"))
    f = folder / "responses.npy"
    if not f.exists():
        raise DataError(f"{folder}: kind 'neural' needs responses.npy (neurons x images, or neurons x images x repeats)")
    resp = np.load(f).astype(np.float64)
    if resp.ndim not in (2, 3) or resp.shape[1] != n:
        raise DataError(f"{f}: expected neurons x {n} images (x repeats), got shape {resp.shape}")
    trials = resp if resp.ndim == 3 else None
    mean = np.nanmean(resp, 2) if trials is not None else resp
    if np.isnan(mean).any():
        raise DataError(f"{f}: NaN responses" + (" for every repeat of some image" if trials is not None else "; NaN is allowed only for missing repeats (neurons x images x repeats)"))
    session = {"session": meta["name"], "stimuli": stimuli, "responses": mean.T, "trials": trials}
    return NeuralBenchmark(meta["name"], version, meta["region"], meta["species"], [session], int(meta.get("splits", 3)),
                           int(meta.get("max_features", 256)))


def load_benchmark(spec: str, root=None, download: bool = False, **kw):
    """A registered id, or a folder holding a user-defined benchmark."""
    if spec in BENCHMARKS:
        return BENCHMARKS.get(spec).factory(root, download, **kw)
    if Path(spec).is_dir():
        return from_folder_spec(spec)
    from .brainscore_adapter import PUBLIC

    if spec not in PUBLIC:
        from nmnc.errors import UnknownNameError

        raise UnknownNameError("benchmark", spec, BENCHMARKS.names() + sorted(PUBLIC), "or give a benchmark folder")  # raises: unknown id, with the list and the closest match
