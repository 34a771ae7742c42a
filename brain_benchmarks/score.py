"""Score models against primate data:
``python -m brain_benchmarks.score --model ID [--benchmark ID ...]``.

Models (--model, repeatable): a checkpoint (file or run folder), 'pixels', 'random:<arch>[@seed]'
or a zoo name (built from its recipe first when its weights are not here, unless --no-build).
Benchmarks (--benchmark, repeatable): registered ids (default: every one that runs offline),
public Brain-Score ids, or folders holding user-defined benchmarks. Every benchmark is loaded
before any extraction, so a typo or missing data fails at once.
Writes DIR/results.csv (--out DIR): rows are appended as each model and benchmark pair finishes.
Each committed score's per-stimulus material (model RDMs, held-out predictions) is kept in
DIR/artefacts/ for the report's paired statistics (brain_benchmarks.artefacts).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nmnc.cli import entry, parser, print_config, writable
from nmnc.config import parse_sets
from nmnc.errors import NmncError, UnknownNameError
from nmnc.models import MODELS
from nmnc.progress import tqdm

from .artefacts import FOLDER, artefact_path, save_artefact
from .benchmarks import (
    BENCHMARKS,
    PUBLIC_INFO,
    Benchmark,
    BenchmarkInfo,
    Row,
    benchmark_info,
    load_benchmark,
)
from .benchmarks import list_lines as benchmark_lines
from .extract import extract, model_key
from .models import PIXELS, ScoredModel, check_model, resolve_model, zoo_name
from .results import ResultRow, append_rows, commitments, read_results

PROG = "python -m brain_benchmarks.score"
PIXELS_ID = "pixels"
OFFLINE = (
    "Kriegeskorte2008.monkeyIT-rsa",
    "Kriegeskorte2008.humanIT-rsa",
    "Cowley2023.V4-pls",
    "Cowley2023.V4-pls-raw",
)
UNITS = "units"  # per-unit scores beside the results: <out>/units/<benchmark>/v<version>/<hash>.csv
RESULTS = "results.csv"  # the table's file name inside --out DIR


@dataclass(frozen=True)
class ScoreConfig:
    """What ``score`` scores, on what, and where the rows go."""

    models: tuple[str, ...]
    benchmarks: tuple[str, ...] = OFFLINE
    data_root: str | None = None
    download: bool = False  # download missing benchmark data into the cache
    out: str | None = None  # folder: rows are appended to <out>/results.csv
    progress: bool = True
    # (checkpoint_hash, benchmark, version, settings) already in <out>/results.csv are skipped;
    # with rescore they are scored again and their old rows replaced
    rescore: bool = False
    # benchmark id -> its settings, e.g. {"Cowley2023.V4-pls": {"sessions": ["210325"]}}
    bench_options: dict = field(default_factory=dict)
    # build zoo models without weights from their recipe (else a one-line error)
    build: bool = True
    # settings on top of a zoo recipe when a model is built (any --set key of nmnc.train)
    run: dict = field(default_factory=dict)


def results_path(out: str | None) -> Path | None:
    """``<out>/results.csv``; a one-line error when ``out`` names a file rather than a folder."""
    if not out:
        return None
    folder = Path(out)
    if folder.is_file() or folder.suffix == ".csv":
        raise NmncError(
            f"--out is a folder (rows go to DIR/{RESULTS}); got the file path {out}; "
            f"give the folder, e.g. --out {folder.parent}"
        )
    writable(folder, "--out", f"{RESULTS}")
    table = folder / RESULTS
    if table.exists() and not (table.is_file() and os.access(table, os.R_OK | os.W_OK)):
        raise NmncError(
            f"{table} is {'not a file' if not table.is_file() else 'not readable and writable'}; "
            "rows are appended to it: fix it or give another --out folder"
        )
    return table


def load_benchmarks(cfg: ScoreConfig) -> list[Benchmark | BenchmarkInfo]:
    """Every benchmark of ``cfg`` loaded (public ones: their files checked), before any
    extraction."""
    from .brainscore_adapter import missing_public_files, score_public

    specs = list(dict.fromkeys(cfg.benchmarks))
    for spec, options in cfg.bench_options.items():
        if spec not in specs and spec not in BENCHMARKS:
            raise UnknownNameError("benchmark in bench_options", spec, specs + BENCHMARKS.names())
        if spec in BENCHMARKS:
            BENCHMARKS.settings(spec, options)  # unknown keys and bad values fail here
    loaded = []
    for spec in specs:
        if spec in PUBLIC_INFO:
            if cfg.bench_options.get(spec):
                raise NmncError(f"{spec} is run by Brain-Score as published; it takes no options")
            if missing_public_files(spec):
                # raises the one-line error naming the files and where they go
                score_public(spec, "")
            loaded.append(PUBLIC_INFO[spec])
        else:
            loaded.append(
                load_benchmark(spec, cfg.data_root, cfg.download, **cfg.bench_options.get(spec, {}))
            )
    return loaded


def scored_pairs(path: Path | None) -> dict[tuple[str, str, int, str], str]:
    """(checkpoint_hash, benchmark, version, settings) already in the results table at ``path``,
    each with its committed layer ('' when the table has no committed row for it). ``settings``
    is the row's settings JSON ('' in tables written before that column)."""
    if path is None or not path.exists():
        return {}
    df = read_results(path)
    if not {"checkpoint_hash", "version"} <= set(df.columns):
        return {}
    df = df.dropna(subset=["checkpoint_hash", "version"])
    settings = df["settings"].fillna("").astype(str) if "settings" in df else [""] * len(df)
    keys = list(
        zip(
            df.checkpoint_hash.astype(str),
            df.benchmark.astype(str),
            df.version.astype(int),
            settings,
        )
    )
    done = {key: "" for key in keys}
    for key, committed, layer in zip(keys, df.committed.astype(str).str.lower(), df.layer):
        if committed == "true":
            done[key] = str(layer)
    return done


def settings_json(bench: Benchmark | BenchmarkInfo) -> str:
    """The settings column a benchmark's rows get."""
    if isinstance(bench, BenchmarkInfo):
        return json.dumps({"route": "brainscore_vision.load_benchmark", "version": bench.version})
    return json.dumps(bench.settings)


def artefacts_dir(results: Path | None) -> Path | None:
    """The folder of per-stimulus artefacts beside the results table."""
    return None if results is None else results.parent / FOLDER


def features_of(model: ScoredModel, bench: Benchmark, progress: bool, layers=None) -> dict:
    """Features of the benchmark's stimulus sets (set -> layer -> array), cached on disk."""
    opts = bench.extract_options()
    return {
        name: extract(model, stim, layers, progress=progress, **opts) for name, stim in bench.sets()
    }


def recover_artefact(
    model: ScoredModel, bench: Benchmark, layer: str, folder: Path, progress: bool = True
) -> Path:
    """The artefact of a pair scored before artefacts were kept: its committed layer measured
    again on the held-out stimuli (no new results rows)."""
    layers = list(dict.fromkeys(layer.split("+")))  # 'a+b': a cross-fit over two layers
    material = bench.committed_material(features_of(model, bench, progress, layers), layer)
    path = artefact_path(folder, bench.id, bench.version, model.hash)
    return save_artefact(path, {**material, "layer": layer})


def _clean(v):
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(float(v)) else float(v)
    return v


def model_fields(model: ScoredModel) -> dict:
    """The columns of a results row that name the model."""
    return {
        "model": model.id,
        "architecture": model.arch,
        "rule": model.rule,
        "seed": model.seed,
        "checkpoint_hash": model.hash,
    }


def result_row(
    model: ScoredModel, bench: Benchmark | BenchmarkInfo, r: Row, seconds: float
) -> ResultRow:
    """A benchmark's row as a row of the results table."""
    info = bench if isinstance(bench, BenchmarkInfo) else bench.info
    lo, hi = r.interval
    return ResultRow(
        **model_fields(model),
        benchmark=r.benchmark,
        version=r.version,
        region=info.region,
        species=info.species,
        layer=r.layer,
        committed=r.committed,
        score=_clean(r.score),
        ci_low=_clean(lo),
        ci_high=_clean(hi),
        raw_score=_clean(r.raw_score),
        ceiling=_clean(r.ceiling),
        normalisation=r.normalisation,
        raw_ci_low=_clean(r.ci_low),
        raw_ci_high=_clean(r.ci_high),
        error=None,
        n_stimuli=r.n_stimuli,
        time=round(seconds, 2),
        details=json.dumps(r.extra, default=_clean),
        data_hash=getattr(bench, "data_hash", ""),
        settings=settings_json(bench),
    )


def units_path(folder: Path, benchmark: str, version: int, weights: str) -> Path:
    """Where the per-unit scores of one model on one benchmark version live."""
    return artefact_path(folder / UNITS, benchmark, version, weights).with_suffix(".csv")


def save_units(folder: Path, model: ScoredModel, bench: Benchmark, rows: list[Row]) -> None:
    """Every row's per-unit scores (one line per layer and unit; the committed row's layer is
    'committed:<layer>') as one CSV beside the results, written atomically."""
    import pandas as pd

    from nmnc.io import atomic_path

    parts = [
        pd.DataFrame(r.units).assign(layer=("committed:" if r.committed else "") + r.layer)
        for r in rows
        if r.units
    ]
    if not parts:
        return
    path = units_path(folder, bench.id, bench.version, model.hash)
    with atomic_path(path, suffix=".csv") as tmp:
        pd.concat(parts).to_csv(tmp, index=False)


def score_pair(
    model: ScoredModel,
    bench: Benchmark | BenchmarkInfo,
    progress: bool = True,
    artefacts: Path | None = None,
    committed: dict | None = None,
) -> list[ResultRow]:
    """The rows of one model on one benchmark (every layer, then the committed one); with
    ``artefacts`` (a folder) the committed row's per-stimulus material is saved there and every
    row's per-unit scores beside it. ``committed`` (region -> layer chosen on data) fixes those
    regions for a public Brain-Score benchmark."""
    t = time.perf_counter()
    if isinstance(bench, BenchmarkInfo):
        return [public_row(model, bench, t, committed, progress)]
    rows = bench.score(features_of(model, bench, progress))
    if artefacts is not None:
        save_units(artefacts.parent, model, bench, rows)
    for r in rows:
        if artefacts is not None and r.committed and r.material is not None:
            path = artefact_path(artefacts, bench.id, bench.version, model.hash)
            save_artefact(path, {**r.material, "layer": r.layer})
    return [result_row(model, bench, r, time.perf_counter() - t) for r in rows]


def public_row(
    model: ScoredModel,
    info: BenchmarkInfo,
    t0: float,
    committed: dict | None = None,
    progress: bool = True,
) -> ResultRow:
    """A public Brain-Score benchmark scored on a ModelCommitment of this model: regions in
    ``committed`` (chosen on data) are fixed, Brain-Score selects the others; the row records the
    layer Brain-Score actually used."""
    from .brainscore_adapter import model_commitment, public_files, score_public

    ident = f"nmnc-{model.arch}-{model.rule}-{model_key(model)}"  # names what changes activations
    commitment, region_map = model_commitment(
        ident, model.net, model.layers, model.input_size, model.mean, model.std, committed
    )
    s = score_public(info.id, commitment, progress)
    v = float(s.values) if s.size == 1 else float(s.sel(aggregation="center"))
    raw = s.attrs.get("raw")
    raw_v = float(np.asarray(raw).ravel()[0]) if raw is not None else None
    ceiling = s.attrs.get("ceiling")
    ceil_v = float(np.asarray(ceiling).ravel()[0]) if ceiling is not None else None
    err = raw.attrs.get("error") if raw is not None and hasattr(raw, "attrs") else None
    e = None if err is None else float(np.asarray(err).ravel()[0])
    # Brain-Score's error is the raw r's standard error over splits: its interval is of raw_score
    layer = dict.get(region_map, info.region, "")
    source = "committed on data" if info.region in (committed or {}) else "Brain-Score selected"
    stimuli = getattr(s.attrs.get("raw"), "sizes", {}).get("presentation")
    return ResultRow(
        **model_fields(model),
        benchmark=info.id,
        version=info.version,
        region=info.region,
        species=info.species,
        layer=layer,
        committed=True,
        score=v,
        raw_score=raw_v,
        ceiling=ceil_v,
        normalisation="r2/ceiling" if info.id.endswith("-pls") else "Brain-Score",
        raw_ci_low=None if e is None or raw_v is None else raw_v - 1.96 * e,
        raw_ci_high=None if e is None or raw_v is None else raw_v + 1.96 * e,
        error=e,
        n_stimuli=stimuli,
        time=round(time.perf_counter() - t0, 2),
        details=json.dumps({"layer_source": source, "region_layer_map": dict(region_map)}),
        settings=settings_json(info),
        # the SHA-1s of the files the installed data plugin names
        data_hash=hashlib.sha256(str(public_files(info.id)).encode()).hexdigest()[:16],
    )


def chosen_layers(results: Path | None, model: ScoredModel) -> dict[str, str]:
    """Region -> layer chosen on data for these weights in the results table
    (:func:`brain_benchmarks.results.commitments`)."""
    if results is None or not results.exists():
        return {}
    chosen = commitments(read_results(results), model.hash, model.layers)
    return {region: c["layer"] for region, c in chosen.items()}


def check(cfg: ScoreConfig) -> None:
    """Everything that can be checked without reading data: models, build settings, the output
    folder and the benchmark ids (one-line errors; ``--print-config`` runs this too)."""
    if not cfg.models:
        raise NmncError(
            "give a model: a checkpoint path, 'pixels', 'random:<arch>', 'torchvision:<name>' or "
            "a zoo name (see --list)"
        )
    results_path(cfg.out)
    for spec in cfg.models:
        check_model(spec, cfg.run)
    if cfg.run and not any(zoo_name(spec) for spec in cfg.models):
        raise NmncError(
            "--set run.KEY sets the training runs of zoo models built on first use, and none of "
            "the given models is a zoo name; leave it out"
        )
    for spec in cfg.benchmarks:
        if benchmark_info(spec) is None and not Path(spec).is_dir():
            known = BENCHMARKS.names() + sorted(PUBLIC_INFO)
            raise UnknownNameError("benchmark", spec, known, "or give a benchmark folder")
    public = [spec for spec in cfg.benchmarks if spec in PUBLIC_INFO]
    if PIXELS_ID in cfg.models and public:
        raise NmncError(
            f"{public[0]} scores a network through Brain-Score's ModelCommitment, and 'pixels' has "
            "no layers to commit; score pixels on our own benchmarks only"
        )


def score(cfg: ScoreConfig) -> list[ResultRow]:
    """Score every model on every benchmark; with ``out``, each pair's rows are appended as it
    finishes.

    Benchmarks and model ids are all checked first, so a typo anywhere costs no extraction.
    """
    check(cfg)
    results = results_path(cfg.out)
    if cfg.rescore and results is None:
        raise NmncError("--rescore replaces rows in DIR/results.csv: give --out DIR")
    benches = load_benchmarks(cfg)
    # public ones last: they fix the regions our own benchmarks chose layers for
    benches.sort(key=lambda b: isinstance(b, BenchmarkInfo))
    done = scored_pairs(results)
    folder = artefacts_dir(results)
    rows = []
    pairs = None  # shown once the first model is ready: an error before that is its only line
    for spec in cfg.models:
        model = resolve_model(spec, cfg.build, cfg.run, cfg.progress, cfg.data_root)
        if pairs is None:
            total = len(cfg.models) * len(benches)
            pairs = tqdm(total=total, desc="score", unit="pair", disable=not cfg.progress)
        for bench in benches:
            pairs.set_postfix_str(f"{spec} on {bench.id}")
            full = (model.hash, bench.id, bench.version, settings_json(bench))
            old = (*full[:3], "")  # a table written before the settings column
            key = full if full in done or old not in done else old
            if key in done and not cfg.rescore:
                print(
                    f"skipped {spec} on {bench.id} (version {bench.version}): "
                    f"its weights {model.hash} "
                    f"are scored in {results}",
                    file=sys.stderr,
                )
                missing = not artefact_path(folder, *key[1:3], model.hash).exists()
                if done[key] and missing and isinstance(bench, Benchmark):
                    path = recover_artefact(model, bench, done[key], folder, cfg.progress)
                    print(f"recovered its per-stimulus artefact {path}", file=sys.stderr)
                pairs.update(1)
                continue
            chosen = chosen_layers(results, model) if isinstance(bench, BenchmarkInfo) else None
            new = score_pair(model, bench, cfg.progress, folder, chosen)
            if results is None:
                pass
            elif key in done:  # --rescore
                append_rows(results, new, replaces=same_pair(key))
            elif not append_rows(results, new, unless=same_pair(full)):
                print(
                    f"{spec} on {bench.id} was scored meanwhile by another process into "
                    f"{results}; its rows are kept and these not added",
                    file=sys.stderr,
                )
            rows += new
            pairs.update(1)
    if pairs is not None:
        pairs.close()
    return rows


def same_pair(key: tuple) -> Callable[[dict], bool]:
    """Whether a results row (CSV strings) is of the (checkpoint_hash, benchmark, version,
    settings) ``key``: the rows a rescore replaces."""
    weights, bench, version, settings = key

    def match(row: dict) -> bool:
        try:
            same_version = float(row.get("version") or "nan") == version
        except ValueError:
            return False
        return (
            row.get("checkpoint_hash") == weights
            and row.get("benchmark") == bench
            and same_version
            and (row.get("settings") or "") == settings
        )

    return match


def print_table(rows: list[ResultRow]) -> None:
    """The rows as a fixed-width table on stderr."""
    import pandas as pd

    cols = ["model", "benchmark", "layer", "committed", "score"]
    cols += ["ci_low", "ci_high", "raw_score", "ceiling", "n_stimuli"]
    df = pd.DataFrame([dataclasses.asdict(r) for r in rows])[cols]
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"), file=sys.stderr)


def print_list() -> None:
    """Every model id, then every benchmark id (``--list``)."""
    from model_zoo.registry import list_lines as zoo_lines

    print("models:")
    size = PIXELS["input_size"]
    print(f"  {'pixels':22s} raw pixels ({size}x{size} RGB, {PIXELS['resize']} resize)")
    for arch in MODELS.names(kind=""):
        print(
            f"  {'random:' + arch:22s} {arch} at initialisation "
            f"(seed 0; random:{arch}@S for seed S)"
        )
    from .models import TORCHVISION

    for name in TORCHVISION:
        print(
            f"  {'torchvision:' + name:22s} torchvision {name} at initialisation (seed 0; @S for "
            "seed S; =FILE for your pretrained state dict): a reference point"
        )
    print(f"  {'<path>':22s} an nmnc checkpoint file or run folder")
    for line in zoo_lines():
        print(f"  {line}")
    print("benchmarks:")
    for line in benchmark_lines():
        print(f"  {line}")
    print(
        f"  {'<folder>':34s} a user-defined benchmark "
        "(benchmark.json, stimuli, rdms.npy or responses.npy)"
    )


def run_settings(pairs: list[str]) -> dict[str, str]:
    """``--set run.<key>=<value>`` pairs: settings of zoo builds (other keys are an error)."""
    out = {}
    for key, value in parse_sets(pairs).items():
        scope, dot, name = key.partition(".")
        if scope != "run" or not dot or not name:
            raise UnknownNameError(
                "--set key",
                key,
                ["run.<key>"],
                "scoring takes run.<key>=<value>: a setting of nmnc.train for the runs that "
                "build zoo models without weights",
            )
        out[name] = value
    return out


def config_from_args(args: argparse.Namespace) -> ScoreConfig:
    """The ScoreConfig the parsed flags describe."""
    return ScoreConfig(
        models=tuple(args.model),
        benchmarks=tuple(args.benchmark) if args.benchmark else OFFLINE,
        data_root=args.data_root,
        download=args.download,
        out=args.out,
        progress=not args.quiet,
        rescore=args.rescore,
        build=not args.no_build,
        run=run_settings(args.sets),
    )


def make_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m brain_benchmarks.score``."""
    p = parser(
        PROG,
        __doc__,
        out=f"folder of the results table ({RESULTS}, appended to)",
        sets="run.<key>=<value>: a setting of nmnc.train for building zoo models without weights",
        listing="list the models, then the benchmarks, and exit",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="ID",
        help="checkpoint, 'pixels', 'random:<arch>[@seed]', 'torchvision:<name>[@seed|=FILE]' "
        "or a zoo name (repeatable)",
    )
    p.add_argument(
        "--benchmark",
        nargs="+",
        action="extend",
        metavar="ID",
        help="benchmark ids or folders (repeatable; default: every offline one)",
    )
    p.add_argument(
        "--download", action="store_true", help="download missing benchmark data into the cache"
    )
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list on stdout")
    p.add_argument(
        "--no-build",
        action="store_true",
        help="a zoo model without weights is an error instead of being built from its recipe",
    )
    p.add_argument(
        "--rescore",
        action="store_true",
        help="score weights and benchmarks already in DIR/results.csv again and replace their rows "
        "(by default they are skipped, one line each on stderr)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse flags, build a ScoreConfig, call :func:`score`, print the table (and JSON)."""
    args = make_parser().parse_args(argv)
    if args.list:
        print_list()
        return 0
    cfg = config_from_args(args)
    check(cfg)
    if args.print_config:
        return print_config(cfg)
    rows = score(cfg)
    if not args.quiet and rows:
        print_table(rows)
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    entry(main, "brain_benchmarks.score")
