"""Score models against primate data.

    python -m brain_benchmarks.score --model ID_OR_CHECKPOINT [--benchmark ID_OR_PATH ...] [--data-root D]
                                     [--out results.csv] [--json]

Models: a checkpoint (file or run folder), ``pixels``, ``random:<arch>``, or a zoo name.
Benchmarks: registered ids (default: every one that runs offline) or user-defined folders.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np

from nmnc.errors import NmncError, run_cli
from nmnc.models import MODELS

from .benchmarks import BENCHMARKS, load_benchmark
from .brainscore_adapter import PUBLIC
from .extract import extract
from .models import resolve_model
from .results import append_rows

OFFLINE = ["Kriegeskorte2008.monkeyIT-rsa", "Kriegeskorte2008.humanIT-rsa", "Cowley2023.V4-pls"]


def _clean(v):
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(float(v)) else float(v)
    return v


def score_model(model_spec: str, benchmarks: list[str], data_root=None, download=False, out=None, progress=True,
                resolver=None, bench_kwargs=None) -> list[dict]:
    """Score one model on benchmarks; returns the tidy rows (also appended to ``out``)."""
    model = resolve_model(model_spec, resolver)
    rows = []
    for spec in benchmarks:
        t = time.perf_counter()
        if spec in PUBLIC:
            rows.append(_public_row(model, spec, t))
            continue
        bench = load_benchmark(spec, data_root, download, **(bench_kwargs or {}).get(spec, {}))
        kw = {"max_features": bench.max_features} if bench.kind == "neural" else {}
        features = {name: extract(model, stim, progress=progress, **kw) for name, stim in bench.sets()}
        results = bench.score(features)
        dt = time.perf_counter() - t
        for r in results:
            lo, hi = r.interval
            rows.append({"model": model.id, "architecture": model.arch, "rule": model.rule, "seed": model.seed,
                         "checkpoint_hash": model.hash, "benchmark": r.benchmark, "version": r.version, "layer": r.layer,
                         "committed": r.committed, "score": _clean(r.score), "ci_low": _clean(lo), "ci_high": _clean(hi),
                         "raw_score": _clean(r.raw_score), "ceiling": _clean(r.ceiling), "error": None, "n_stimuli": r.n_stimuli,
                         "time": round(dt, 2), "details": json.dumps(r.extra), "region": bench.region, "species": bench.species})
    if out:
        append_rows(out, rows)
    return rows


def _public_row(model, spec: str, t0: float) -> dict:
    """A public Brain-Score benchmark through a ModelCommitment of this model (registered in-process)."""
    from model_zoo.registry import region_layer_map

    from .brainscore_adapter import missing_public_files, model_commitment, register_model, score_public

    if missing_public_files(spec):
        score_public(spec, "")  # raises the one-line error naming the files
    if model.net is None:
        raise NmncError(f"{spec} needs a network; 'pixels' has no layers to commit")
    ident = f"nmnc-{model.arch}-{model.rule}-{model.hash}"
    register_model(ident, lambda: model_commitment(ident, model.net, model.layers, model.input_size, model.mean, model.std,
                                                   region_layer_map(model.layers)))
    s = score_public(spec, ident)
    err = s.attrs.get("error")
    v = float(s.values) if s.size == 1 else float(s.sel(aggregation="center"))
    e = None if err is None else float(np.asarray(err).ravel()[0])
    raw = s.attrs.get("raw")
    return {"model": model.id, "architecture": model.arch, "rule": model.rule, "seed": model.seed, "checkpoint_hash": model.hash,
            "benchmark": spec, "version": 1, "layer": "region_layer_map", "committed": True, "score": v,
            "ci_low": None if e is None else v - 1.96 * e, "ci_high": None if e is None else v + 1.96 * e,
            "raw_score": float(np.asarray(raw).ravel()[0]) if raw is not None else None, "ceiling": None, "error": e,
            "n_stimuli": None, "time": round(time.perf_counter() - t0, 2), "details": "{}"}


def print_table(rows: list[dict]) -> None:
    import pandas as pd

    df = pd.DataFrame(rows)[["model", "benchmark", "layer", "committed", "score", "ci_low", "ci_high", "raw_score", "ceiling", "n_stimuli"]]
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"), file=sys.stderr)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m brain_benchmarks.score", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", help="checkpoint, 'pixels', 'random:<arch>' or a zoo name (repeatable)")
    p.add_argument("--benchmark", nargs="+", action="extend", help="benchmark ids or folders (default: all offline ones)")
    p.add_argument("--data-root")
    p.add_argument("--download", action="store_true", help="download missing benchmark data into the cache")
    p.add_argument("--out", help="results table to append to (CSV)")
    p.add_argument("--json", action="store_true", help="print the scores as a JSON list on stdout")
    p.add_argument("--list-benchmarks", action="store_true")
    p.add_argument("--list-models", action="store_true")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    from model_zoo.registry import list_lines, resolve as resolver
    if args.list_benchmarks:
        for name in BENCHMARKS.names():
            print(f"{name:34s} {BENCHMARKS.get(name).help}")
        for name in sorted(PUBLIC):
            print(f"{name:34s} Brain-Score public benchmark (needs its data in $BRAINIO_HOME)")
        return 0
    if args.list_models:
        print("pixels                raw pixels (64x64 RGB)")
        for arch in MODELS.names():
            print(f"random:{arch:14s} {arch} at initialisation (seed 0; random:{arch}@S for seed S)")
        print("<path>                an nmnc checkpoint file or run folder")
        for line in list_lines():
            print(line)
        return 0
    if not args.model:
        raise NmncError("--model is required: a checkpoint path, 'pixels', 'random:<arch>' or a zoo name (see --list-models)")
    all_rows = []
    for spec in args.model:
        rows = score_model(spec, args.benchmark or OFFLINE, args.data_root, args.download, args.out, not args.quiet, resolver)
        all_rows += rows
    if not args.quiet:
        print_table(all_rows)
    if args.json:
        keys = ["model", "benchmark", "layer", "committed", "score", "ci_low", "ci_high", "ceiling", "n_stimuli", "raw_score", "version"]
        print(json.dumps([{k: r[k] for k in keys} for r in all_rows], indent=1))
    return 0




if __name__ == "__main__":
    sys.exit(run_cli(main, prog="brain_benchmarks.score"))
