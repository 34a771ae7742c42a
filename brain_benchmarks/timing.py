"""How fast scoring is (tables, not tests): ``python -m brain_benchmarks.timing COMMAND``.

extraction     images/s of our extraction against brainscore-vision's PytorchWrapper
               (same model, layers and images)
scoring        wall time and peak memory of scoring one model on every offline benchmark
brainscore-v4  the same checkpoints scored on a V4 benchmark through our own route and through
               Brain-Score's (a NeuralBenchmark per session on a ModelCommitment): the two
               numbers per layer, their difference and the time each route takes

Settings are ``--set KEY=VALUE`` (repeatable; lists comma-separated), e.g.
``extraction --model runs/bp --set images=600 --set repeats=3`` or
``brainscore-v4 --set models=bp_cnn,vnc_cnn --set sessions=190923 --set splits=5``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nmnc.cli import apply_sets, entry, parser, print_config, subcommands

from .extract import extract
from .models import resolve_model

PROG = "python -m brain_benchmarks.timing"


@dataclass(frozen=True)
class ExtractionTiming:
    """Settings of ``timing extraction``."""

    model: str = "random:cnn"
    images: int = 1200  # from V4 session 190923 (112x112 JPEG)
    repeats: int = 2
    data_root: str | None = None


@dataclass(frozen=True)
class ScoringTiming:
    """Settings of ``timing scoring``."""

    model: str
    data_root: str | None = None


@dataclass(frozen=True)
class BrainscoreV4Timing:
    """Settings of ``timing brainscore-v4``."""

    models: tuple[str, ...] = ("bp_cnn", "vnc_cnn", "nmnc_cnn")  # any --model of scoring
    benchmark: str = "Cowley2023.V4-pls"  # or Cowley2023.V4-pls-raw
    sessions: tuple[str, ...] = ()  # empty: the benchmark's default sessions
    splits: int = 5  # k-fold cross-validation of the PLS fit
    layer: str | None = None  # the layer compared (None: every layer)
    data_root: str | None = None


def time_extraction(cfg: ExtractionTiming) -> pd.DataFrame:
    """Images/s of ``extract`` and of Brain-Score's PytorchWrapper, per repeat."""
    from .brainscore_adapter import pytorch_wrapper, stimulus_set
    from .datasets import cowley2023

    model = resolve_model(cfg.model)
    (session,) = cowley2023(cfg.data_root, sessions=["190923"])
    stim = session["stimuli"].subset(range(min(cfg.images, len(session["stimuli"]))))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(len(stim)):  # Brain-Score reads image files from disk
            p = Path(tmp) / f"{stim.ids[i]}"
            stim.read(i).save(p, quality=95)
            paths.append(str(p))
        for rep in range(cfg.repeats):
            t = time.perf_counter()
            extract(model, stim, model.layers, use_cache=False, progress=False)
            ours = time.perf_counter() - t
            ident = f"timing-{model.hash}-{rep}-{time.time()}"
            wrapper = pytorch_wrapper(model.net, ident, model.input_size, model.mean, model.std)
            ss = stimulus_set(paths, stim.ids, f"timing-stimuli-{time.time()}")
            t = time.perf_counter()
            wrapper(ss, layers=model.layers)
            theirs = time.perf_counter() - t
            rows.append(
                {
                    "run": rep,
                    "ours_img_s": len(stim) / ours,
                    "pytorchwrapper_img_s": len(stim) / theirs,
                    "speed_up": theirs / ours,
                }
            )
    print(
        f"model {model.arch} ({model.hash}), {len(stim)} images "
        f"(112x112 JPEG -> {model.input_size}px), "
        f"layers {','.join(model.layers)}"
    )
    return pd.DataFrame(rows)


def time_scoring(cfg: ScoringTiming) -> pd.DataFrame:
    """Wall time and peak resident memory of scoring one model on every offline benchmark."""
    from .score import ScoreConfig, print_table, score

    t = time.perf_counter()
    rows = score(ScoreConfig(models=(cfg.model,), data_root=cfg.data_root, progress=False))
    wall = time.perf_counter() - t
    print_table(rows)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
    return pd.DataFrame(
        [{"model": cfg.model, "rows": len(rows), "wall_s": wall, "peak_rss_mb": peak}]
    )


def time_brainscore_v4(cfg: BrainscoreV4Timing) -> pd.DataFrame:
    """Per model and layer, and for the committed score: the benchmark's score through our route
    (``brain_benchmarks.score``) and through Brain-Score's (each half of our data as Brain-Score
    NeuralBenchmarks, the model as a ModelCommitment with V4 committed to the layer, the same PCA
    basis as a batch-activations hook; the halves averaged as our score averages them), and the
    seconds each route took."""
    from nmnc.data import cache_dir

    from .base import SELECT, TEST
    from .benchmarks import load_benchmark
    from .brainscore_adapter import half_benchmarks, model_commitment
    from .extract import model_key, pca_bases, reduction_tag
    from .score import score_pair

    options = {"splits": cfg.splits, **({"sessions": cfg.sessions} if cfg.sessions else {})}
    bench = load_benchmark(cfg.benchmark, cfg.data_root, **options)
    on_half = half_benchmarks(bench, cache_dir() / "brainscore_stimuli")
    rows = []
    for spec in cfg.models:
        model = resolve_model(spec, progress=False, data_root=cfg.data_root)
        t = time.perf_counter()
        ours = score_pair(model, bench, progress=False)
        ours_s = time.perf_counter() - t
        committed = json.loads(ours[-1].details)
        basis, k = {}, bench.max_features
        if k:
            basis = pca_bases(model, bench.pca_images, model.layers, bench.max_features)
        layers = [cfg.layer] if cfg.layer else [r.layer for r in ours if not r.committed]
        layers = list(dict.fromkeys([*layers, committed["layer_a"], committed["layer_b"]]))
        bs, bs_s = {}, 0.0
        for layer in layers:
            ident = f"nmnc-{model_key(model)}-{layer}-{reduction_tag('none', k, bench.pca_images)}"
            commitment, _ = model_commitment(
                ident,
                model.net,
                model.layers,
                model.input_size,
                model.mean,
                model.std,
                {bench.region: layer},
                basis,
            )
            t = time.perf_counter()
            bs[layer] = {h: float(b(commitment)) for h, b in on_half.items()}
            bs_s += time.perf_counter() - t
        by_layer = {r.layer: r.score for r in ours if not r.committed}
        pairs = [
            (layer, by_layer[layer], np.mean(list(bs[layer].values())))
            for layer in layers
            if layer in by_layer and (cfg.layer is None or layer == cfg.layer)
        ]
        a, b = committed["layer_a"], committed["layer_b"]
        pairs.append(
            (f"committed ({ours[-1].layer})", ours[-1].score, np.mean([bs[a][TEST], bs[b][SELECT]]))
        )
        for layer, mine, theirs in pairs:
            rows.append(
                {
                    "model": spec,
                    "layer": layer,
                    "ours": mine,
                    "brainscore": theirs,
                    "difference": f"{mine - theirs:.1e}",
                    "ours_s": ours_s,
                    "brainscore_s": bs_s,
                }
            )
    return pd.DataFrame(rows)


FLAGS = ("model", "data_root")  # given with --model and --data-root, not --set


def _default(value) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "all"
    return "none" if value is None else str(value)


def settings_help(config: type) -> str:
    """The ``--set`` keys of a timing config with their defaults, for ``--help``."""
    keys = [
        f"{f.name} (default {_default(f.default)})"
        for f in dataclasses.fields(config)
        if f.name not in FLAGS
    ]
    return "setting: " + ", ".join(keys) if keys else "no settings here"


def apply_timing_sets(cfg, sets: list[str], command: str):
    """``cfg`` with the ``--set`` pairs applied (``--model`` and ``--data-root`` are flags)."""
    flags = {"model": "--model", "data_root": "--data-root"}
    return apply_sets(
        cfg, sets, f"{command} setting", {k: v for k, v in flags.items() if k in FLAGS}
    )


def make_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m brain_benchmarks.timing`` and its subcommands."""
    p = parser(PROG, __doc__, data_root=False, print_config=False, quiet=False)
    sub = subcommands(p)
    e = parser(
        PROG,
        "images/s of our extraction against Brain-Score's PytorchWrapper",
        sets=settings_help(ExtractionTiming),
        quiet=False,
        parent=sub,
        name="extraction",
    )
    e.add_argument(
        "--model",
        default=ExtractionTiming.model,
        metavar="ID",
        help="model to time: checkpoint, 'pixels', 'random:<arch>' or a zoo name "
        "(default random:cnn)",
    )
    s = parser(
        PROG,
        "wall time and peak memory of scoring one model on every offline benchmark",
        sets=settings_help(ScoringTiming),
        quiet=False,
        parent=sub,
        name="scoring",
    )
    s.add_argument(
        "--model",
        required=True,
        metavar="ID",
        help="model to time: checkpoint, 'pixels', 'random:<arch>' or a zoo name",
    )
    parser(
        PROG,
        "zoo models scored on our V4 data through brainscore_vision",
        sets=settings_help(BrainscoreV4Timing)
        + "; lists are comma-separated (models=bp_cnn,vnc_cnn); layer none: each model's own "
        "region map",
        quiet=False,
        parent=sub,
        name="brainscore-v4",
    )
    return p


def config_from_args(
    args: argparse.Namespace,
) -> ExtractionTiming | ScoringTiming | BrainscoreV4Timing:
    """The timing config of the chosen subcommand: flags, then ``--set`` pairs."""
    if args.command == "extraction":
        base = ExtractionTiming(model=args.model, data_root=args.data_root)
    elif args.command == "scoring":
        base = ScoringTiming(model=args.model, data_root=args.data_root)
    else:
        base = BrainscoreV4Timing(data_root=args.data_root)
    return apply_timing_sets(base, args.sets, args.command)


RUN = {
    ExtractionTiming: time_extraction,
    ScoringTiming: time_scoring,
    BrainscoreV4Timing: time_brainscore_v4,
}


def main(argv: list[str] | None = None) -> int:
    """Parse flags, build the subcommand's config, run it and print its table."""
    args = make_parser().parse_args(argv)
    cfg = config_from_args(args)
    if args.print_config:
        return print_config(cfg)
    table = RUN[type(cfg)](cfg)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


if __name__ == "__main__":
    entry(main, "brain_benchmarks.timing")
