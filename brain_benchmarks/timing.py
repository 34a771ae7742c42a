"""How fast scoring is (tables, not tests): ``python -m brain_benchmarks.timing COMMAND``.

extraction     images/s of our extraction against brainscore-vision's PytorchWrapper
               (same model, layers and images)
scoring        wall time and peak memory of scoring one model on every offline benchmark
brainscore-v4  zoo models scored on our V4 data as a Brain-Score NeuralBenchmark, through
               their ModelCommitment

Settings are ``--set KEY=VALUE`` (repeatable; lists comma-separated), e.g.
``extraction --model runs/bp --set images=600 --set repeats=3`` or
``brainscore-v4 --set models=bp_cnn,vnc_cnn --set sessions=190923 --set splits=5``.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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

    models: tuple[str, ...] = ("bp_cnn", "vnc_cnn", "nmnc_cnn")
    sessions: tuple[str, ...] = ()  # empty: all 9 sessions
    splits: int = 3  # cross-validation folds of the PLS fit
    layer: str | None = None  # V4 layer for every model (None: each model's region map)
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
    """Our V4 benchmark as a Brain-Score NeuralBenchmark, scored through each zoo model's
    ModelCommitment."""
    from nmnc.data import cache_dir

    from .benchmarks import NeuralBenchmark, benchmark_info
    from .brainscore_adapter import (
        _patched,
        neural_benchmark,
        register_benchmark,
        register_zoo_model,
    )
    from .datasets import cowley2023

    info = benchmark_info("Cowley2023.V4-pls")
    sessions = cowley2023(cfg.data_root, sessions=list(cfg.sessions) or None)
    ceiling = NeuralBenchmark(info, sessions).ceiling()
    folder = cache_dir() / "brainscore_stimuli"
    register_benchmark(
        info.id,
        lambda: neural_benchmark(info.id, sessions, "V4", folder, ceiling, splits=cfg.splits),
    )
    bs = _patched()
    rows = []
    for name in cfg.models:
        ident = register_zoo_model(name, {"V4": cfg.layer} if cfg.layer else None)
        t = time.perf_counter()
        s = bs.score(ident, info.id)
        layer = bs.load_model(ident).layer_model.region_layer_map["V4"]
        sessions_scores = " ".join(f"{v:.3f}" for v in s.attrs.get("session_scores", []))
        rows.append(
            {
                "model": name,
                "identifier": ident,
                "v4_layer": layer,
                "score": float(s),
                "session_scores": sessions_scores,
                "seconds": time.perf_counter() - t,
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
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


if __name__ == "__main__":
    entry(main, "brain_benchmarks.timing")
