"""The one module that imports brainscore_vision (lazily, inside functions).

Brain-Score is heavy: registries filled on import, caches keyed by identifier, and a pip install
by default when a plugin loads. We set BS_INSTALL_DEPENDENCIES=no, hand it only local data, and
call its public API only: its metrics, ``NeuralBenchmark``, ``ModelCommitment`` and
``load_benchmark(id)(commitment)``; nothing is patched and nothing is written into site-packages.
The tested versions are pinned in pyproject.toml.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np


def _bs():
    os.environ.setdefault("BS_INSTALL_DEPENDENCIES", "no")
    # Brain-Score's result caching keys activations and scores on identifiers alone, across
    # processes (~/.result_caching): a model or stimulus set that changes under the same name gets
    # stale results back (measured: a plugin's pinned score). Our own caches key on content.
    os.environ.setdefault("RESULTCACHING_DISABLE", "1")
    with warnings.catch_warnings():  # its Score class's FutureWarning about xarray __slots__
        warnings.filterwarnings("ignore", message="xarray subclass", category=FutureWarning)
        import brainscore_core.metrics  # noqa: F401
        import brainscore_vision  # noqa: F401

    return brainscore_vision


def neuroid_assembly(
    values: np.ndarray, stimulus_ids: list[str], neuroid_ids: list[str], region: str = "V4"
):
    """A (presentation x neuroid) NeuroidAssembly with the coordinates Brain-Score's metrics
    expect."""
    _bs()
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly

    return NeuroidAssembly(
        np.asarray(values, dtype=np.float64),
        dims=["presentation", "neuroid"],
        coords={
            "stimulus_id": ("presentation", list(stimulus_ids)),
            "image_index": ("presentation", np.arange(len(stimulus_ids))),
            "neuroid_id": ("neuroid", list(neuroid_ids)),
            "region": ("neuroid", [region] * len(neuroid_ids)),
        },
    )


PLS_COMPONENTS = 25  # Brain-Score's pls metric


def pls_metric(splits: int, seed: int = 0):
    """Brain-Score's ``pls`` metric (25 components, no scaling) with ``splits``-fold
    cross-validation over images (each image tested once), seeded: the one metric of every neural
    benchmark, on both routes."""
    bs = _bs()
    import logging

    logging.getLogger("brainscore_vision").setLevel(logging.WARNING)
    return bs.load_metric("pls", crossvalidation_kwargs=cv_settings(splits, seed))


def cv_settings(splits: int, seed: int = 0) -> dict:
    """The cross-validation settings of :func:`pls_metric` (k-fold, no stratification)."""
    return dict(splits=splits, kfold=True, stratification_coord=None, random_state=seed)


def row_space(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both feature arrays in coordinates of the span of the centred training rows, when features
    outnumber training images: PLS weights lie in that span, so its predictions are unchanged
    (exactly, up to rounding) while every fit works in at most N - 1 dimensions."""
    n, d = train.shape
    if d < n:
        return train, test
    mean = train.mean(0)
    Xc = train - mean
    vals, vecs = np.linalg.eigh(Xc @ Xc.T)
    keep = vals > vals.max() * 1e-12
    Q = Xc.T @ (vecs[:, keep] / np.sqrt(vals[keep]))  # (d, rank), orthonormal columns
    return train @ Q, test @ Q


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of every column of ``a`` with the same column of ``b`` (NaN for a constant
    column)."""
    a, b = a - a.mean(0), b - b.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def pls_folds(
    features: np.ndarray, responses: np.ndarray, stimulus_ids: list[str], splits: int, seed: int = 0
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Cross-validated PLS predictivity of every neuron in every fold: (folds, neurons) Pearson r
    of held-out predictions, and each fold's held-out (positions, predictions, responses).

    The same computation as Brain-Score's ``pls`` metric of :func:`pls_metric` (its folds: KFold
    over the images in order, shuffled with ``seed``; PLS with 25 components, no scaling; Pearson
    r per neuron), without its per-fold xarray bookkeeping, which costs twice the fit itself.
    ``brain_benchmarks.timing brainscore-v4`` and the tests compare the two routes."""
    import warnings

    from sklearn.cross_decomposition import PLSRegression
    from sklearn.model_selection import KFold

    X, Y = np.asarray(features, np.float64), np.asarray(responses, np.float64)
    if len(stimulus_ids) != len(X):
        raise ValueError(f"{len(stimulus_ids)} stimulus ids for {len(X)} feature rows")
    fold_r, kept = [], []
    for train, test in KFold(splits, shuffle=True, random_state=seed).split(X):
        Xtr, Xte = row_space(X[train], X[test])
        k = min(PLS_COMPONENTS, *Xtr.shape)
        with warnings.catch_warnings():  # PLS on noisy neurons often stops at max_iter
            warnings.simplefilter("ignore")
            pred = PLSRegression(n_components=k, scale=False).fit(Xtr, Y[train]).predict(Xte)
        fold_r.append(pearson_columns(pred, Y[test]))
        kept.append((test, pred, Y[test]))
    return np.array(fold_r), kept


def stimulus_set(paths: list[str], ids: list[str], identifier: str):
    """A Brain-Score StimulusSet over image files on disk."""
    _bs()
    from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet

    s = StimulusSet({"stimulus_id": list(ids), "image_index": list(range(len(ids)))})
    s.stimulus_paths = dict(zip(ids, paths))
    s.identifier = identifier
    return s


def pytorch_wrapper(
    net, identifier: str, input_size: int, mean, std, basis: dict | None = None, batch_size=64
):
    """brainscore-vision's PytorchWrapper over our network with the project's one preprocessing
    (``model_zoo.plain.load_preprocess``); ``basis`` (layer -> PCA mean and components, as
    ``extract.pca_bases`` gives them) reduces wide layers as our own extraction does."""
    _bs()
    import functools

    import torch
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper

    from model_zoo.plain import load_preprocess

    pre = functools.partial(load_preprocess, image_size=input_size, mean=mean, std=std)
    wrapper = PytorchWrapper(
        model=net, preprocessing=pre, identifier=identifier, batch_size=batch_size
    )
    wrapper.image_size = input_size
    if basis:

        def project(batch_activations):
            out = {}
            for layer, acts in batch_activations.items():
                b = basis.get(layer)
                x = torch.from_numpy(np.asarray(acts).reshape(len(acts), -1)).float()
                out[layer] = ((x - b["mean"]) @ b["components"]).numpy() if b else acts
            return out

        wrapper.register_batch_activations_hook(project)
    return wrapper


def model_commitment(
    identifier: str,
    net,
    layers: list[str],
    input_size: int,
    mean,
    std,
    committed: dict | None = None,
    basis: dict | None = None,
):
    """A Brain-Score ModelCommitment over our network. Regions in ``committed`` (region -> layer,
    chosen on data) are fixed; Brain-Score selects the layer of every other region itself, on its
    own benchmarks, when a benchmark first asks for it. Returns the commitment and its
    region-layer map (read it after scoring for the layers actually used)."""
    _bs()
    from brainscore_vision.model_helpers.brain_transformation import (
        STANDARD_REGION_BENCHMARKS,
        LayerSelection,
        ModelCommitment,
        RegionLayerMap,
    )

    wrapper = pytorch_wrapper(net, identifier, input_size, mean, std, basis)
    selection = LayerSelection(
        model_identifier=identifier,
        activations_model=wrapper,
        layers=list(layers),
        visual_degrees=8,
    )
    region_map = RegionLayerMap(selection, STANDARD_REGION_BENCHMARKS)
    region_map.update(committed or {})
    commitment = ModelCommitment(
        identifier=identifier,
        activations_model=wrapper,
        layers=list(layers),
        region_layer_map=region_map,
    )
    return commitment, region_map


def recording_assembly(responses: np.ndarray, stimuli, region: str, folder):
    """NeuronRecordingAssembly (presentation x neuroid x time_bin) with its StimulusSet on disk."""
    _bs()
    from pathlib import Path

    from brainscore_core.supported_data_standards.brainio.assemblies import NeuronRecordingAssembly

    from nmnc.io import atomic_path

    paths = []
    folder = folder / stimuli.digest  # one folder per stimulus set: sessions reuse file names
    folder.mkdir(parents=True, exist_ok=True)
    for i, sid in enumerate(stimuli.ids):
        p = folder / f"{i:05d}_{Path(sid).stem}.png"
        if not p.exists():
            with atomic_path(p, suffix=".png") as tmp:  # a killed run leaves no truncated image
                stimuli.read(i).save(tmp, format="PNG")
        paths.append(str(p))
    ids = [f"{stimuli.digest}-{i}" for i in range(len(stimuli))]
    values = np.asarray(responses, dtype=np.float64)[:, :, None]  # (images, neurons, 1 time bin)
    asm = NeuronRecordingAssembly(
        values,
        dims=["presentation", "neuroid", "time_bin"],
        coords={
            "stimulus_id": ("presentation", ids),
            "image_index": ("presentation", np.arange(len(ids))),
            "neuroid_id": ("neuroid", [f"n{j}" for j in range(values.shape[1])]),
            "region": ("neuroid", [region] * values.shape[1]),
            "time_bin_start": ("time_bin", [70]),
            "time_bin_end": ("time_bin", [170]),
        },
    )
    asm = asm.squeeze(
        "time_bin"
    )  # static responses; the time bin stays as scalar coordinates, as in Brain-Score's data
    # Brain-Score caches activations (on disk, across processes) by stimulus-set identifier and
    # keeps the image paths in them: it names the content, the folder and our file layout (v2)
    place = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:8]
    ident = f"nmnc-{stimuli.name}-{stimuli.digest}-{place}-v2"
    asm.attrs["stimulus_set"] = stimulus_set(paths, ids, ident)
    asm.attrs["stimulus_set_identifier"] = ident
    return asm


def neural_benchmark(
    identifier: str,
    sessions: list[dict],
    region: str,
    folder,
    ceilings,
    splits: int = 5,
    version: int = 1,
):
    """A neural benchmark of ours as Brain-Score NeuralBenchmarks, one per session (the ``pls``
    metric of :func:`pls_metric`, each session's ceiling or 1 without), scored as their mean: the
    same definition ``brain_benchmarks.neural`` computes on our own route."""
    _bs()
    from brainscore_core.benchmarks import BenchmarkBase
    from brainscore_core.metrics import Score
    from brainscore_vision.benchmark_helpers.neural_common import NeuralBenchmark

    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for s, c in zip(sessions, ceilings):
        ceiling = Score(float(c) if np.isfinite(c) else 1.0)
        parts.append(
            NeuralBenchmark(
                identifier=f"{identifier}.{s['session']}",
                version=version,
                assembly=recording_assembly(s["responses"], s["stimuli"], region, folder),
                similarity_metric=pls_metric(splits),
                visual_degrees=8,
                number_of_trials=1,
                ceiling_func=lambda ceiling=ceiling: ceiling,
                parent=region,
                bibtex="",
            )
        )

    class Pooled(BenchmarkBase):
        def __init__(self):
            super().__init__(
                identifier=identifier,
                ceiling=Score(1.0),
                version=version,
                parent=region,
                bibtex="",
            )

        def __call__(self, candidate):
            scores = [p(candidate) for p in parts]
            out = Score(float(np.mean([float(x) for x in scores])))
            out.attrs["session_scores"] = [float(x) for x in scores]
            out.attrs["session_raw"] = [float(x.attrs["raw"]) for x in scores]
            return out

    return Pooled()


def half_benchmarks(bench, folder) -> dict:
    """A NeuralBenchmark of ours (``brain_benchmarks.neural``) as Brain-Score benchmarks, one per
    half of its stimuli (SELECT, TEST), with its ceilings and folds: our score of a layer is the
    mean of the two halves' Brain-Score scores, the committed score the mean of the best-on-A
    layer on B and the best-on-B layer on A."""
    from .base import SELECT, TEST, pick

    out = {}
    for half in (SELECT, TEST):
        sessions = []
        for s in bench.sessions:
            idx = pick(len(s["responses"]), half)
            sessions.append(
                {**s, "stimuli": s["stimuli"].subset(idx), "responses": s["responses"][idx]}
            )
        out[half] = neural_benchmark(
            f"{bench.id}.half{half}",
            sessions,
            bench.region,
            folder,
            bench.ceilings(),
            bench.splits,
            bench.version,
        )
    return out


# ---- public Brain-Score benchmarks ----------------------------------------------------------
# Which data each public benchmark reads: the installed data plugin's folder, the assembly's and
# the stimulus set's identifiers. File names and SHA-1s are read from that plugin's source.
PUBLIC = {
    "FreemanZiemba2013public.V1-pls": (
        "freemanziemba2013",
        "movshon.FreemanZiemba2013.public",
        "FreemanZiemba2013.aperture-public",
    ),
    "MajajHong2015public.V4-pls": ("majajhong2015", "dicarlo.MajajHong2015.public", "hvm-public"),
    "Rajalingham2018public-i2n": (
        "rajalingham2018",
        "dicarlo.Rajalingham2018.public",
        "objectome.public",
    ),
}
PUBLIC["FreemanZiemba2013public.V2-pls"] = PUBLIC["FreemanZiemba2013public.V1-pls"]
PUBLIC["MajajHong2015public.IT-pls"] = PUBLIC["MajajHong2015public.V4-pls"]


def _plugin_calls(folder: str) -> list[dict]:
    """Keyword arguments (constants only) of every ``load_*_from_s3`` call in an installed
    brainscore_vision data plugin, read from its source without importing it."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("brainscore_vision")
    source = Path(spec.origin).parent / "data" / folder / "__init__.py"
    calls = []
    for node in ast.walk(ast.parse(source.read_text())):
        name = getattr(getattr(node, "func", None), "id", "")
        if isinstance(node, ast.Call) and name.startswith("load_") and name.endswith("_from_s3"):
            kw = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)}
            calls.append({"loader": name, **kw})
    return calls


def public_files(benchmark: str) -> list[tuple[str, str]]:
    """(file name, SHA-1) of every data file a public benchmark reads, as the installed data
    plugin names them (``$BRAINIO_HOME/<sha1>/<file>``)."""
    folder, assembly, stimuli = PUBLIC[benchmark]
    files = []
    for call in _plugin_calls(folder):
        ident = str(call.get("identifier", ""))
        stem = ident.replace(".", "_")
        prefix = call.get("filename_prefix")
        if ident == assembly and call["loader"] == "load_assembly_from_s3":
            files.append((f"{prefix or 'assy_'}{stem}.nc", call["sha1"]))
        elif ident == stimuli and call["loader"] == "load_stimulus_set_from_s3":
            files.append((f"{prefix or 'stimulus_'}{stem}.csv", call["csv_sha1"]))
            files.append((f"{prefix or 'stimulus_'}{stem}.zip", call["zip_sha1"]))
    if len(files) != 3:
        raise RuntimeError(
            f"the installed brainscore_vision data plugin '{folder}' no longer names the files "
            f"of {benchmark} ({assembly}, {stimuli}); update PUBLIC in "
            "brain_benchmarks.brainscore_adapter"
        )
    return files


def brainio_home() -> Path:
    """Where Brain-Score's data files live (``$BRAINIO_HOME``, else ~/.brainio)."""
    return Path(os.path.expanduser(os.environ.get("BRAINIO_HOME", "~/.brainio")))


def missing_public_files(benchmark: str) -> list[str]:
    """Paths of a public benchmark's data files that are not in ``$BRAINIO_HOME``."""
    home = brainio_home()
    return [
        str(home / sha / name)
        for name, sha in public_files(benchmark)
        if not (home / sha / name).exists()
    ]


def score_public(benchmark: str, commitment, progress: bool = True):
    """Run a public Brain-Score benchmark on a ModelCommitment; offline without its files, a clear
    error at once. Without ``progress``, Brain-Score's own bars (activations, cross-validation)
    are not shown: they write to stderr, which is closed to them for the run."""
    from nmnc.errors import DataError

    missing = missing_public_files(benchmark)
    if missing:
        raise DataError(
            f"{benchmark} needs Brain-Score's public data files, not found here: "
            f"{', '.join(missing)}; "
            f"put them there (BRAINIO_HOME={brainio_home()}; "
            "Brain-Score downloads them from its S3 bucket "
            "brainscore-storage/brainio-brainscore when online)"
        )
    import contextlib

    bs = _bs()
    try:
        with contextlib.ExitStack() as stack:
            if not progress:
                devnull = stack.enter_context(open(os.devnull, "w"))
                stack.enter_context(contextlib.redirect_stderr(devnull))
            return bs.load_benchmark(benchmark)(commitment)
    except Exception as err:  # botocore and friends: never shown raw
        if (
            "botocore" in type(err).__module__
            or "NoCredentials" in str(err)
            or "EndpointConnection" in str(err)
        ):
            raise DataError(
                f"{benchmark}: Brain-Score tried to download data that is missing from "
                f"{brainio_home()} ({type(err).__name__}); Brain-Score's own layer selection "
                "for regions without a committed layer reads its public V1, V2, V4 and IT data"
            ) from None
        raise
