"""Test accuracy as a benchmark of the report: which test images each trained run classifies
correctly, so accuracy differences can be resampled over images like the brain scores.

Each run is evaluated on CPU on the test subset its trainer evaluated on (``eval_examples``
class-balanced test images drawn with seed 0, or the whole test split), and the per-image
correctness is cached as an artefact (``<report>/artefacts/<dataset>-test-accuracy/``) keyed by the
weights hash, so a report built again evaluates nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nmnc.errors import NmncError

from .artefacts import artefact_path, load_artefact, save_artefact

SUFFIX = "-test-accuracy"
VERSION = 1


def benchmark_name(dataset: str) -> str:
    """The benchmark id of a dataset's test accuracy: 'cifar10-test-accuracy'."""
    return f"{dataset}{SUFFIX}"


def is_accuracy(benchmark: str) -> bool:
    """Whether a benchmark id is a test accuracy."""
    return str(benchmark).endswith(SUFFIX)


def correct_on_test(ckpt, data) -> tuple[np.ndarray, np.ndarray]:
    """(test indices, correct) of a checkpoint on the test subset its trainer evaluated on."""
    import torch

    from nmnc.data.splits import balanced_subset

    test = data.test
    n, k = len(test), int(ckpt.config.get("eval_examples") or 0)
    idx = balanced_subset(test.labels, k, 0) if 0 < k < n else torch.arange(n)
    model = ckpt.build_model()
    chunks = [(i, idx[i : i + 500]) for i in range(0, len(idx), 500)]
    correct = []
    with torch.no_grad():
        for x, y in test.loader(chunks, False, 0, "cpu", num_workers=0):
            correct.append((model(x).float().argmax(1) == y).numpy())
    return idx.numpy(), np.concatenate(correct)


def _checkpoint_of(spec: str):
    """The checkpoint behind a results-table model id (a path or a zoo name with weights here)."""
    from nmnc.checkpoint import load_checkpoint

    if Path(spec).exists():
        ckpt = load_checkpoint(spec)
        ckpt.require_images("the report's image test accuracy (give it as a --sections folder)")
        return ckpt
    from .models import resolve_model, zoo_name

    if zoo_name(spec):
        return load_checkpoint(resolve_model(spec, build=False, progress=False).meta["checkpoint"])
    raise NmncError(f"no checkpoint at {spec}")


def accuracy_rows(
    models: list[str], out: Path, data_root: str | None = None
) -> tuple[pd.DataFrame, dict[tuple[str, str], dict]]:
    """One committed results-style row per trained run (test accuracy as the score) and its
    per-image material keyed by (model, benchmark); runs that cannot be read are left out with a
    line on stderr, as is everything when the dataset is not here."""
    from nmnc.data import load_dataset

    rows, mats, datasets, unread = [], {}, {}, []
    for spec in dict.fromkeys(models):
        try:
            ckpt = _checkpoint_of(spec)
        except NmncError as err:
            unread.append(f"{spec} ({err})")
            continue
        bench = benchmark_name(ckpt.dataset)
        path = artefact_path(Path(out) / "artefacts", bench, VERSION, ckpt.weights_hash)
        material = load_artefact(path)
        if material is None:
            key = (ckpt.dataset, ckpt.input_size)
            if key not in datasets:
                try:
                    datasets[key] = load_dataset(ckpt.dataset, data_root, input_size=key[1])
                except NmncError as err:
                    datasets[key] = None
                    print(f"report: no test accuracy on {ckpt.dataset} ({err})", file=sys.stderr)
            if datasets[key] is None:
                continue
            idx, correct = correct_on_test(ckpt, datasets[key])
            order = np.argsort(idx)
            material = {"kind": "accuracy", "index": idx[order], "correct": correct[order]}
            save_artefact(path, material)
        acc, n = float(np.mean(material["correct"])), len(material["correct"])
        half = 1.96 * np.sqrt(acc * (1 - acc) / n)  # binomial interval of one run
        rows.append(
            {
                "model": spec,
                "architecture": ckpt.arch,
                "rule": ckpt.rule,
                "seed": ckpt.seed,
                "checkpoint_hash": ckpt.weights_hash,
                "benchmark": bench,
                "version": VERSION,
                "region": "accuracy",
                "species": "",
                "layer": "output",
                "committed": True,
                "score": acc,
                "ci_low": acc - half,
                "ci_high": acc + half,
                "raw_score": acc,
                "n_stimuli": n,
            }
        )
        mats[(spec, bench)] = material
    if unread:
        print(
            f"report: no test accuracy for {len(unread)} runs whose checkpoint cannot be read, "
            f"e.g. {unread[0]}",
            file=sys.stderr,
        )
    return pd.DataFrame(rows), mats
