"""The one module that imports brainscore_vision (lazily, inside functions).

Brain-Score is heavy: registries filled on import, caches keyed by identifier, and a pip install
by default when a plugin loads. We set BS_INSTALL_DEPENDENCIES=no and hand it only local data.
"""

from __future__ import annotations

import os

import numpy as np


def _bs():
    os.environ.setdefault("BS_INSTALL_DEPENDENCIES", "no")
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


def pls_per_neuron(
    features: np.ndarray,
    responses: np.ndarray,
    stimulus_ids: list[str],
    splits: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """Cross-validated PLS predictivity (Pearson r on held-out images) of every neuron: (neurons,).

    ``features`` (N, d), ``responses`` (N, neurons). Brain-Score's ``pls`` metric (25 components,
    90/10 splits) does the work; the per-neuron scores are its raw scores averaged over splits.
    """
    bs = _bs()
    import logging

    logging.getLogger("brainscore_vision").setLevel(logging.WARNING)
    metric = bs.load_metric(
        "pls",
        crossvalidation_kwargs=dict(splits=splits, stratification_coord=None, random_state=seed),
    )
    source = neuroid_assembly(
        features, stimulus_ids, [f"f{i}" for i in range(features.shape[1])], "model"
    )
    target = neuroid_assembly(responses, stimulus_ids, [f"n{i}" for i in range(responses.shape[1])])
    import warnings

    with (
        warnings.catch_warnings()
    ):  # PLS on noisy neurons often stops at max_iter; the score accounts for it
        warnings.filterwarnings("ignore", message="Maximum number of iterations reached")
        score = metric(source, target)
    return score.raw.mean("split").values


def stimulus_set(paths: list[str], ids: list[str], identifier: str):
    """A Brain-Score StimulusSet over image files on disk."""
    _bs()
    from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet

    s = StimulusSet({"stimulus_id": list(ids), "image_index": list(range(len(ids)))})
    s.stimulus_paths = dict(zip(ids, paths))
    s.identifier = identifier
    return s


def pytorch_wrapper(net, identifier: str, input_size: int, mean, std, batch_size: int = 64):
    """brainscore-vision's PytorchWrapper with preprocessing matching our training."""
    _bs()
    import functools

    from brainscore_vision.model_helpers.activations.pytorch import (
        PytorchWrapper,
        load_preprocess_images,
    )

    pre = functools.partial(
        load_preprocess_images,
        image_size=input_size,
        normalize_mean=tuple(mean),
        normalize_std=tuple(std),
    )
    wrapper = PytorchWrapper(
        model=net, preprocessing=pre, identifier=identifier, batch_size=batch_size
    )
    return wrapper


# ---- in-process registration -----------------------------------------------------------------
_LOCAL = {"models": set(), "benchmarks": set()}


def _patched():
    """brainscore_vision resolves every identifier through plugin folders on disk; identifiers we
    register in this process are answered from the registry without a folder (nothing is copied)."""
    bs = _bs()
    if not getattr(bs.import_plugin, "_nmnc", False):
        original = bs.import_plugin

        def import_plugin(library_root, plugin_type, identifier, *args, **kwargs):
            if identifier in _LOCAL.get(plugin_type, ()):
                return None
            return original(library_root, plugin_type, identifier, *args, **kwargs)

        import_plugin._nmnc = True
        bs.import_plugin = import_plugin
    return bs


def model_commitment(
    identifier: str, net, layers: list[str], input_size: int, mean, std, region_layer_map: dict
):
    """A Brain-Score ModelCommitment over our network with an explicit region-to-layer map."""
    _bs()
    from brainscore_vision.model_helpers.brain_transformation import ModelCommitment

    wrapper = pytorch_wrapper(net, identifier, input_size, mean, std)
    wrapper.image_size = input_size
    return ModelCommitment(
        identifier=identifier,
        activations_model=wrapper,
        layers=list(layers),
        region_layer_map=dict(region_layer_map),
    )


def register_model(identifier: str, factory) -> str:
    """Register a model factory in brainscore_vision's registry for this process."""
    bs = _patched()
    bs.model_registry[identifier] = factory
    _LOCAL["models"].add(identifier)
    return identifier


def register_zoo_model(name: str, region_layer_map: dict | None = None) -> str:
    """Register a zoo model into brainscore_vision's registry in this process; returns its
    identifier."""
    from model_zoo.registry import region_layer_map as zoo_region_map
    from model_zoo.registry import variant_id, weights
    from nmnc.checkpoint import load_checkpoint

    ckpt = load_checkpoint(weights(name))
    ident = variant_id(name, ckpt.weights_hash)

    def factory():
        net = ckpt.build_model()
        layers = list(net.hidden_layers)
        return model_commitment(
            ident,
            net,
            layers,
            ckpt.input_size,
            ckpt.mean,
            ckpt.std,
            zoo_region_map(layers, region_layer_map),
        )

    return register_model(ident, factory)


def register_benchmark(identifier: str, factory) -> str:
    """Register a benchmark factory in brainscore_vision's registry for this process."""
    bs = _patched()
    bs.benchmark_registry[identifier] = factory
    _LOCAL["benchmarks"].add(identifier)
    return identifier


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
    # Brain-Score caches activations by stimulus-set identifier: it names the content and our file
    # layout (v2)
    ident = f"nmnc-{stimuli.name}-{stimuli.digest}-v2"
    asm.attrs["stimulus_set"] = stimulus_set(paths, ids, ident)
    asm.attrs["stimulus_set_identifier"] = ident
    return asm


def neural_benchmark(
    identifier: str,
    sessions: list[dict],
    region: str,
    folder,
    ceiling: float | None = None,
    splits: int = 3,
):
    """Our V4 data as Brain-Score NeuralBenchmarks (one per session); the score is their mean."""
    bs = _bs()
    from brainscore_core.benchmarks import BenchmarkBase
    from brainscore_core.metrics import Score
    from brainscore_vision.benchmark_helpers.neural_common import NeuralBenchmark

    folder.mkdir(parents=True, exist_ok=True)
    ceil = (lambda: Score(ceiling)) if ceiling else (lambda: Score(1.0))
    parts = [
        NeuralBenchmark(
            identifier=f"{identifier}.{s['session']}",
            version=1,
            assembly=recording_assembly(s["responses"], s["stimuli"], region, folder),
            similarity_metric=bs.load_metric(
                "pls", crossvalidation_kwargs=dict(splits=splits, stratification_coord=None)
            ),
            visual_degrees=8,
            number_of_trials=1,
            ceiling_func=ceil,
            parent=region,
            bibtex="",
        )
        for s in sessions
    ]

    class Pooled(BenchmarkBase):
        def __init__(self):
            super().__init__(
                identifier=identifier, ceiling=ceil(), version=1, parent=region, bibtex=""
            )

        def __call__(self, candidate):
            scores = [float(p(candidate)) for p in parts]
            out = Score(float(np.mean(scores)))
            out.attrs["session_scores"] = scores
            return out

    return Pooled()


# ---- public Brain-Score benchmarks ----------------------------------------------------------
# The files each public benchmark reads, as brainscore's data plugins name them:
# BRAINIO_HOME/<sha1>/<file>.
PUBLIC = {
    "FreemanZiemba2013public.V1-pls": [
        ("assy_movshon_FreemanZiemba2013_public.nc", "761c08f796db4e342555cdb60eef23a4f19ead43"),
        (
            "stimulus_FreemanZiemba2013_aperture-public.csv",
            "194c9b301a4e3e9cff02481d4c19b39331d52660",
        ),
        (
            "stimulus_FreemanZiemba2013_aperture-public.zip",
            "3a6fec1fc28c212882d6833e267ea8654d289611",
        ),
    ],
    "MajajHong2015public.V4-pls": [
        ("assy_dicarlo_MajajHong2015_public.nc", "13d28ca0ce88ee550b54db3004374ae19096e9b9"),
        ("stimulus_hvm-public.csv", "5ca7a3da00d8e9c694a9cd725df5ba0ad6d735af"),
        ("stimulus_hvm-public.zip", "8aa44e038d7b551efa8077467622f9d48d72e473"),
    ],
    "Rajalingham2018public-i2n": [
        ("assy_dicarlo_Rajalingham2018_public.nc", "34c6a8b6f7c523589c1861e4123232e5f7c7df4c"),
        ("stimulus_objectome_public.csv", "47884e17106a3be471d6481279cab33889b80850"),
        ("stimulus_objectome_public.zip", "064f2955f98e63867755fee2e3ead8cddf6bfab8"),
    ],
}
PUBLIC["FreemanZiemba2013public.V2-pls"] = PUBLIC["FreemanZiemba2013public.V1-pls"]
PUBLIC["MajajHong2015public.IT-pls"] = PUBLIC["MajajHong2015public.V4-pls"]


def brainio_home():
    """Where Brain-Score's data files live (``$BRAINIO_HOME``, else ~/.brainio)."""
    from pathlib import Path

    return Path(os.path.expanduser(os.environ.get("BRAINIO_HOME", "~/.brainio")))


def missing_public_files(benchmark: str) -> list[str]:
    """Paths of a public benchmark's data files that are not in ``$BRAINIO_HOME``."""
    home = brainio_home()
    return [
        str(home / sha / name)
        for name, sha in PUBLIC[benchmark]
        if not (home / sha / name).exists()
    ]


def score_public(benchmark: str, model_identifier: str):
    """Run a public Brain-Score benchmark on a registered model; offline without its files, a clear
    error at once."""
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
    bs = _patched()
    try:
        return bs.load_benchmark(benchmark)(bs.load_model(model_identifier))
    except Exception as err:  # botocore and friends: never shown raw
        if (
            "botocore" in type(err).__module__
            or "NoCredentials" in str(err)
            or "EndpointConnection" in str(err)
        ):
            raise DataError(
                f"{benchmark}: Brain-Score tried to download data that is missing from "
                f"{brainio_home()} ({type(err).__name__})"
            ) from None
        raise
