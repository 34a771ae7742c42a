"""User-defined benchmarks: a folder holding benchmark.json, stimuli and brain data (format in the
README), checked against one schema before any extraction.

Every problem a user can make in such a folder is a one-line :class:`DataError` naming the file
and the fix, raised by :func:`from_folder_spec` while the benchmark is loaded, so
``brain_benchmarks.score`` (which loads every benchmark first) fails before extracting anything.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nmnc.errors import DataError

from .base import Benchmark, BenchmarkInfo
from .neural import PLS_COMPONENTS, NeuralBenchmark
from .rsa import METHODS
from .similarity import RSABenchmark
from .stimuli import Stimuli, from_folder, from_zip

KINDS = ("rsa", "neural")
# Fewest stimuli a benchmark can be scored on: a layer is chosen on one half and scored on the
# other, and each half needs enough images for its statistic (an RDM, PLS cross-validation).
MIN_FOLD = 5  # held-out images per cross-validation fold, at the least
MIN_IMAGES = {"rsa": 6, "neural": 50}


def _text(v) -> bool:
    return isinstance(v, str) and v.strip() != ""


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _names(v) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(map(_text, v))


@dataclass(frozen=True)
class Key:
    """One key of benchmark.json: the values it accepts, what it means, and for which kinds."""

    accepts: str  # said in the error when a value is refused
    example: str  # a valid line of benchmark.json
    meaning: str
    check: Callable[[object], bool]
    kinds: tuple[str, ...] = KINDS
    required: bool = False


SCHEMA = {
    "name": Key(
        "a non-empty string",
        '"name": "MyLab2025.IT-rsa"',
        "the benchmark id in results (not a built-in id)",
        _text,
        required=True,
    ),
    "region": Key(
        "a non-empty string",
        '"region": "IT"',
        "brain region, e.g. V1, V4, IT",
        _text,
        required=True,
    ),
    "species": Key(
        "a non-empty string", '"species": "macaque"', "species recorded", _text, required=True
    ),
    "kind": Key(
        "'rsa' or 'neural'",
        '"kind": "rsa"',
        "rsa: rdms.npy compared with model RDMs; neural: responses.npy predicted by PLS",
        lambda v: v in KINDS if isinstance(v, str) else False,
        required=True,
    ),
    "version": Key(
        "an integer >= 1",
        '"version": 2',
        "raise it when the data change, so old results are not mixed with new (default 1)",
        lambda v: _int(v) and v >= 1,
    ),
    "description": Key(
        "a string",
        '"description": "IT RDMs of 3 subjects"',
        "free text, not used in scoring",
        lambda v: isinstance(v, str),
    ),
    "stimuli": Key(
        "a list of distinct file names",
        '"stimuli": ["a.png", "b.png"]',
        "image file names in the order of the data (default: sorted names)",
        _names,
    ),
    "method": Key(
        f"one of {', '.join(METHODS)}",
        '"method": "spearman"',
        "how model and brain RDMs are compared (default spearman)",
        lambda v: v in METHODS if isinstance(v, str) else False,
        kinds=("rsa",),
    ),
    "splits": Key(
        "an integer >= 2, at most a quarter of the number of images",
        '"splits": 5',
        "k-fold cross-validation folds of the PLS fit on each half of the images",
        lambda v: _int(v) and v >= 2,
        kinds=("neural",),
    ),
    "max_features": Key(
        f"0 (no reduction) or an integer >= {PLS_COMPONENTS} (the PLS components)",
        '"max_features": 1000',
        "wider layers are reduced to this many principal components (of CIFAR-10 test images)",
        lambda v: _int(v) and (v == 0 or v >= PLS_COMPONENTS),
        kinds=("neural",),
    ),
}


def _shown(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_meta(meta, where: Path) -> dict:
    """``meta`` (parsed benchmark.json) checked against :data:`SCHEMA`; returned unchanged."""
    if not isinstance(meta, dict):
        raise DataError(
            f"{where} must hold a JSON object ({{...}}), got a {type(meta).__name__}; "
            'write e.g. {"name": "MyLab2025.IT-rsa", "region": "IT", "species": "macaque", '
            '"kind": "rsa"}'
        )
    for key in meta:
        if key not in SCHEMA:
            close = difflib.get_close_matches(key, SCHEMA, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise DataError(
                f"{where}: unknown key '{key}'; {hint}keys: {', '.join(SCHEMA)} (README: "
                "user-defined benchmarks)"
            )
    missing = [k for k, spec in SCHEMA.items() if spec.required and k not in meta]
    if missing:
        raise DataError(
            f"{where} lacks {', '.join(missing)}; required: name, region, species, "
            "kind ('rsa' or 'neural')"
        )
    for key in sorted(meta, key=lambda k: k != "kind"):  # kind first: other keys depend on it
        spec = SCHEMA[key]
        if not spec.check(meta[key]):
            raise DataError(
                f"{where}: '{key}' must be {spec.accepts}, got {_shown(meta[key])}; "
                f"write e.g. {spec.example}"
            )
        if meta["kind"] not in spec.kinds:
            raise DataError(
                f"{where}: '{key}' applies to kind '{spec.kinds[0]}' only and this benchmark is "
                f"kind '{meta['kind']}'; remove it"
            )
    seen: set[str] = set()
    twice = next((s for s in meta.get("stimuli", []) if s in seen or seen.add(s)), None)
    if twice is not None:
        raise DataError(
            f"{where}: the 'stimuli' list names {twice} twice; list each file once, in the order "
            "of the data"
        )
    _not_builtin(meta["name"], where)
    return meta


def _not_builtin(name: str, where: Path) -> None:
    from .benchmarks import BENCHMARKS, PUBLIC_INFO  # benchmarks imports this module

    if name in BENCHMARKS or name in PUBLIC_INFO:
        raise DataError(
            f"{where}: name '{name}' is a built-in benchmark id and results would mix with its "
            "rows; choose another name, e.g. MyLab2025.IT-rsa"
        )


def read_meta(folder: Path) -> dict:
    """benchmark.json of ``folder``, checked against the schema."""
    meta_path = folder / "benchmark.json"
    if not meta_path.is_file():
        raise DataError(
            f"{folder}: no benchmark.json; a benchmark folder needs benchmark.json, stimuli/ or "
            "stimuli.zip, and rdms.npy or responses.npy"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(
            f"{meta_path} is not valid JSON ({err}); fix it or write it again"
        ) from None
    return check_meta(meta, meta_path)


def load_array(f: Path, shape: str) -> np.ndarray:
    """A numeric array from ``f`` (no pickles), as float64; ``shape`` says what is expected."""
    try:
        arr = np.load(f, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(
            f"{f} cannot be read as a .npy array ({why}); save a numeric array of {shape} with "
            "numpy.save"
        ) from None
    if (
        not isinstance(arr, np.ndarray)
        or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool)
        or np.issubdtype(arr.dtype, np.complexfloating)
    ):
        kind = type(arr).__name__ if not isinstance(arr, np.ndarray) else f"{arr.dtype} array"
        raise DataError(f"{f} holds a {kind}; save a numeric array of {shape} with numpy.save")
    arr = arr.astype(np.float64)
    if np.isinf(arr).any():
        raise DataError(f"{f} contains inf; give finite values (NaN marks missing repeats only)")
    return arr


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
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2] or arr.shape[0] == 0:
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
    rows, cols = np.triu_indices(n, 1)
    upper = arr[:, rows, cols]
    flat = np.flatnonzero(upper.max(1) == upper.min(1))
    if flat.size:
        raise DataError(
            f"{where}: RDM {flat[0]} has the same dissimilarity for every pair, so no model can "
            "correlate with it; give the measured dissimilarities"
        )
    return arr


def _session(f: Path, n: int, name: str, stimuli: Stimuli) -> dict:
    """The one session of a neural folder from responses.npy (see the README)."""
    shape = f"neurons x {n} images, or neurons x {n} images x repeats"
    resp = load_array(f, shape)
    if resp.ndim not in (2, 3) or resp.shape[1] != n or resp.shape[0] == 0:
        raise DataError(f"{f}: expected {shape}, got shape {resp.shape}")
    if resp.ndim == 3 and resp.shape[2] < 2:
        raise DataError(
            f"{f}: {resp.shape[2]} repeat per image gives no ceiling, which needs at least 2; "
            f"give neurons x images (no ceiling) or neurons x images x repeats with >= 2 repeats"
        )
    if resp.ndim == 2:
        if np.isnan(resp).any():
            raise DataError(
                f"{f}: NaN responses; NaN is allowed only for missing repeats "
                "(neurons x images x repeats)"
            )
        trials, mean = None, resp
    else:
        if (np.isnan(resp).all(2)).any():
            raise DataError(
                f"{f}: NaN responses for every repeat of some image; each neuron needs at least "
                "one response per image"
            )
        trials, mean = resp, np.nanmean(resp, 2)
    return {"session": name, "stimuli": stimuli, "responses": mean.T, "trials": trials}


def _check_signal(session: dict, f: Path) -> None:
    """Refuse neurons with the same response to every image (their r is undefined) and single
    trials with no reliable signal: a ceiling within chance of zero (2 / sqrt(images), twice the
    standard error of a correlation over the images) makes r**2 / ceiling meaningless."""
    flat = np.flatnonzero(np.ptp(session["responses"], axis=0) == 0)
    if len(flat):
        raise DataError(
            f"{f}: {len(flat)} neurons respond the same to every image (first: neuron {flat[0]}); "
            "drop them, a correlation with them is undefined"
        )
    if session["trials"] is not None:
        from .neural import split_half_reliability

        ceiling = float(np.nanmedian(split_half_reliability(session["trials"])))
        chance = 2 / np.sqrt(session["trials"].shape[1])
        if not ceiling > chance:
            raise DataError(
                f"{f}: the repeats are not reliable (median split-half reliability {ceiling:.3f}, "
                f"the ceiling, is within chance of zero: it needs > {chance:.3f}); give neurons x "
                "images (no ceiling) instead"
            )


def _stimuli(folder: Path, meta: dict) -> Stimuli:
    """The folder's stimuli, every one decoded once here so that a broken file is named before
    any model runs."""
    order = meta.get("stimuli")
    if (folder / "stimuli").is_dir():
        stimuli = from_folder(folder / "stimuli", order, meta["name"])
    elif (folder / "stimuli.zip").is_file():
        stimuli = from_zip(folder / "stimuli.zip", order, meta["name"])
    else:
        raise DataError(
            f"{folder}: no stimuli/ folder or stimuli.zip; put the images in one of them"
        )
    for i in range(len(stimuli)):
        stimuli.read(i)
    return stimuli


def _data_file(folder: Path, kind: str) -> Path:
    name, what = {
        "rsa": ("rdms.npy", "one N x N RDM, S x N x N, or condensed vectors"),
        "neural": ("responses.npy", "neurons x images, or neurons x images x repeats"),
    }[kind]
    f = folder / name
    if not f.is_file():
        raise DataError(f"{folder}: kind '{kind}' needs {name} ({what})")
    return f


def _default(key: str):
    """The default of a NeuralBenchmark setting a folder leaves out (one place owns defaults)."""
    import inspect

    return inspect.signature(NeuralBenchmark).parameters[key].default


def from_folder_spec(path: str | Path, root: str | Path | None = None) -> Benchmark:
    """A user-defined benchmark from a folder (format in the README), every file checked;
    ``root`` is the data root holding the images a neural benchmark's PCA is fitted on."""
    folder = Path(path)
    meta = read_meta(folder)
    kind = meta["kind"]
    f = _data_file(folder, kind)
    stimuli = _stimuli(folder, meta)
    n = len(stimuli)
    if n < MIN_IMAGES[kind]:
        raise DataError(
            f"{folder}: {n} images, and kind '{kind}' needs at least {MIN_IMAGES[kind]} "
            "(a layer is chosen on one half of them and scored on the other); add images"
        )
    info = BenchmarkInfo(meta["name"], meta.get("version", 1), meta["region"], meta["species"])
    # keys left out take the benchmark classes' defaults
    given = {k: meta[k] for k in SCHEMA if k in meta and SCHEMA[k].kinds == (kind,)}
    if kind == "rsa":
        rdms = _rdm_stack(load_array(f, "RDMs (N x N, S x N x N or condensed)"), n, str(f))
        return RSABenchmark(info, stimuli, rdms, **given)
    splits = meta.get("splits", _default("splits"))
    most = (n // 2) // MIN_FOLD
    if splits > most:  # a held-out fold of 2 images gives r = +-1 whatever the model
        raise DataError(
            f"{folder / 'benchmark.json'}: 'splits' is {splits}, and each half of the {n} "
            f"images is cross-validated in that many folds of at least {MIN_FOLD} images; give "
            f"an integer from 2 to {most}"
        )
    session = _session(f, n, meta["name"], stimuli)
    _check_signal(session, f)
    if meta.get("max_features", _default("max_features")):
        from .datasets import pca_images  # PCA fitted on held-out images, as for built-in V4

        given["pca_images"] = pca_images(root)
    return NeuralBenchmark(info, [session], **given)
