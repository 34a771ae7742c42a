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


def neuroid_assembly(values: np.ndarray, stimulus_ids: list[str], neuroid_ids: list[str], region: str = "V4"):
    """A (presentation x neuroid) NeuroidAssembly with the coordinates Brain-Score's metrics expect."""
    _bs()
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly

    return NeuroidAssembly(np.asarray(values, dtype=np.float64), dims=["presentation", "neuroid"], coords={
        "stimulus_id": ("presentation", list(stimulus_ids)), "image_index": ("presentation", np.arange(len(stimulus_ids))),
        "neuroid_id": ("neuroid", list(neuroid_ids)), "region": ("neuroid", [region] * len(neuroid_ids))})


def pls_per_neuron(features: np.ndarray, responses: np.ndarray, stimulus_ids: list[str], splits: int = 10,
                   seed: int = 0) -> np.ndarray:
    """Cross-validated PLS predictivity (Pearson r on held-out images) of every neuron: (neurons,).

    ``features`` (N, d), ``responses`` (N, neurons). Brain-Score's ``pls`` metric (25 components,
    90/10 splits) does the work; the per-neuron scores are its raw scores averaged over splits.
    """
    bs = _bs()
    import logging

    logging.getLogger("brainscore_vision").setLevel(logging.WARNING)
    metric = bs.load_metric("pls", crossvalidation_kwargs=dict(splits=splits, stratification_coord=None, random_state=seed))
    source = neuroid_assembly(features, stimulus_ids, [f"f{i}" for i in range(features.shape[1])], "model")
    target = neuroid_assembly(responses, stimulus_ids, [f"n{i}" for i in range(responses.shape[1])])
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

    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper, load_preprocess_images

    pre = functools.partial(load_preprocess_images, image_size=input_size, normalize_mean=tuple(mean), normalize_std=tuple(std))
    wrapper = PytorchWrapper(model=net, preprocessing=pre, identifier=identifier, batch_size=batch_size)
    return wrapper
