"""User-defined benchmarks: a folder holding benchmark.json, stimuli and brain data (format in the
README), checked against one schema before any extraction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nmnc.errors import DataError

from .base import Benchmark, BenchmarkInfo
from .neural import NeuralBenchmark
from .similarity import RSABenchmark
from .stimuli import from_folder, from_zip


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
