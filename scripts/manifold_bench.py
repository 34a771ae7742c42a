"""Manifold estimators: the streaming sketch (``fd``) against batch PCA on a trained image model,
and the memory each model's manifold state takes.

    python scripts/manifold_bench.py --set checkpoint=runs/cnn_bp [--set k=32] [--out DIR]
    python scripts/manifold_bench.py --set models=resnet18,cnn --set ks=8,16,32   # memory only

Agreement (with ``checkpoint``): both estimators take in the same ``stream_batches`` training
batches; per hidden layer, the overlap of their top-k subspaces, alpha and NMNC's RMS cosine with
the true gradient (nmnc.analysis.estimators). Memory (``models``): per model and k, the state
``estimator=auto`` keeps per layer once warm, against batch PCA's buffer. Tables are printed;
``--out DIR`` writes DIR/manifold_bench.json.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from nmnc.analysis.estimators import EstimatorConfig, estimator_agreement, manifold_memory
from nmnc.cli import entry, print_config, script_settings
from nmnc.io import atomic_write_text
from nmnc.models import MODELS

OUT_FILE = "manifold_bench.json"


@dataclass(frozen=True)
class ManifoldBench:
    """Settings (``--set KEY=VALUE``)."""

    checkpoint: str = ""  # a trained image model's run folder: compare the estimators on it
    k: int = 32
    stream_batches: int = 32
    batch_size: int = 64
    P: int = 16
    models: tuple[str, ...] = ("cnn", "resnet", "resnet18", "alexnet")  # memory rows
    ks: tuple[int, ...] = (8, 16, 32)
    data_root: str | None = None  # --data-root
    out: str | None = None  # --out


def main(argv=None) -> int:
    """Compare the estimators on a checkpoint (if given) and print the memory tables."""
    cfg, args = script_settings(
        ManifoldBench,
        argv,
        "python scripts/manifold_bench.py",
        __doc__.split("\n\n")[0],
        OUT_FILE,
        "bench setting",
        sets="checkpoint=DIR, k, stream_batches, batch_size, P, models, ks",
    )
    for model in cfg.models:
        MODELS.get(model)
    if args.print_config:
        return print_config(cfg)
    result = {}
    if cfg.checkpoint:
        rows = estimator_agreement(
            EstimatorConfig(
                cfg.checkpoint,
                cfg.data_root,
                cfg.k,
                stream_batches=cfg.stream_batches,
                batch_size=cfg.batch_size,
                P=cfg.P,
            )
        )
        result["agreement"] = rows
        print(f"\nestimators on {cfg.checkpoint} (k = {cfg.k}, P = {cfg.P}, reference pca)")
        print(tabulate(pd.DataFrame(rows), headers="keys", showindex=False, floatfmt=".3f"))
    memory = [row for model in cfg.models for row in manifold_memory(model, cfg.ks)]
    result["memory"] = memory
    df = pd.DataFrame(memory)
    total = df.groupby(["model", "k"], sort=False).agg(
        layers=("layer", "size"),
        on_fd=("estimator", lambda e: int((e == "fd").sum())),
        state_mb=("state_mb", "sum"),
        pca_buffers_mb=("pca_buffer_mb", "sum"),
    )
    print("\nmanifold state per model (estimator=auto, default budget 96 MB per layer)")
    print(tabulate(total.reset_index(), headers="keys", showindex=False, floatfmt=".1f"))
    if cfg.out:
        atomic_write_text(Path(cfg.out) / OUT_FILE, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    entry(main, "manifold_bench")
