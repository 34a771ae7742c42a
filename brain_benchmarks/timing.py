"""Benchmarks for scoring (tables, not tests).

    python -m brain_benchmarks.bench extraction [--model CKPT] [--images 1200]
        images/s of our extraction against brainscore-vision's PytorchWrapper, same model, layers and images
    python -m brain_benchmarks.bench full --model CKPT
        wall time and peak memory of every offline benchmark for one model
    python -m brain_benchmarks.bench brainscore-v4 [--models bp_cnn,vnc_cnn,nmnc_cnn]
        zoo models scored on our V4 data as a Brain-Score NeuralBenchmark through their ModelCommitment
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from nmnc.errors import run_cli

from .extract import extract
from .models import resolve_model


def extraction(args) -> None:
    from .brainscore_adapter import pytorch_wrapper, stimulus_set
    from .datasets import cowley2023

    model = resolve_model(args.model)
    (session,) = cowley2023(args.data_root, sessions=["190923"])
    stim = session["stimuli"].subset(range(min(args.images, len(session["stimuli"]))))
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(len(stim)):  # Brain-Score reads image files from disk
            p = Path(tmp) / f"{stim.ids[i]}"
            stim.read(i).save(p, quality=95)
            paths.append(str(p))
        rows = []
        for rep in range(2):
            t = time.perf_counter()
            extract(model, stim, model.layers, use_cache=False, progress=False)
            ours = time.perf_counter() - t
            wrapper = pytorch_wrapper(model.net, f"bench-{model.hash}-{rep}-{time.time()}", model.input_size, model.mean, model.std)
            ss = stimulus_set(paths, stim.ids, f"bench-stimuli-{time.time()}")
            t = time.perf_counter()
            wrapper(ss, layers=model.layers)
            theirs = time.perf_counter() - t
            rows.append((rep, ours, theirs))
    print(f"model {model.arch} ({model.hash}), {len(stim)} images (112x112 JPEG -> {model.input_size}px), layers {','.join(model.layers)}")
    print(f"{'run':>4s} {'ours img/s':>11s} {'PytorchWrapper img/s':>21s} {'speed-up':>9s}")
    for rep, ours, theirs in rows:
        print(f"{rep:4d} {len(stim) / ours:11.1f} {len(stim) / theirs:21.1f} {theirs / ours:9.2f}x")


def full(args) -> None:
    from .score import OFFLINE, print_table, score_model

    t = time.perf_counter()
    rows = score_model(args.model, OFFLINE, args.data_root, progress=False)
    wall = time.perf_counter() - t
    print_table(rows)
    print(f"wall {wall:.1f} s, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def brainscore_v4(args) -> None:
    """Our V4 benchmark as a Brain-Score NeuralBenchmark, scored through each zoo model's ModelCommitment."""
    from .brainscore_adapter import _patched, neural_benchmark, register_benchmark, register_zoo_model
    from .benchmarks import NeuralBenchmark
    from .datasets import cowley2023

    from nmnc.data import cache_dir

    sessions = cowley2023(args.data_root, sessions=args.sessions.split(",") if args.sessions else None)
    ceiling = NeuralBenchmark("c", 1, "V4", "macaque", sessions).ceiling()
    register_benchmark("Cowley2023.V4-pls", lambda: neural_benchmark("Cowley2023.V4-pls", sessions, "V4",
                                                                    cache_dir() / "brainscore_stimuli", ceiling, splits=args.splits))
    bs = _patched()
    print(f"{'model':12s} {'identifier':32s} {'V4 layer':9s} {'score':>7s}  session scores")
    for name in args.models.split(","):
        ident = register_zoo_model(name, {"V4": args.layer} if args.layer else None)
        t = time.perf_counter()
        score = bs.score(ident, "Cowley2023.V4-pls")
        layer = bs.load_model(ident).layer_model.region_layer_map["V4"]
        sess = ", ".join(f"{v:.3f}" for v in score.attrs.get("session_scores", []))
        print(f"{name:12s} {ident:32s} {layer:9s} {float(score):7.3f}  [{sess}] ({time.perf_counter() - t:.0f} s)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m brain_benchmarks.bench")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extraction")
    e.add_argument("--model", default="random:cnn")
    e.add_argument("--images", type=int, default=1200)
    e.add_argument("--data-root")
    f = sub.add_parser("full")
    f.add_argument("--model", required=True)
    f.add_argument("--data-root")
    b = sub.add_parser("brainscore-v4", help="zoo models scored on our V4 data through brainscore_vision")
    b.add_argument("--models", default="bp_cnn,vnc_cnn,nmnc_cnn")
    b.add_argument("--sessions", help="comma-separated session ids (default: all 9)")
    b.add_argument("--splits", type=int, default=3)
    b.add_argument("--layer", help="V4 layer for every model (default: the model's region map)")
    b.add_argument("--data-root")
    args = p.parse_args(argv)
    {"extraction": extraction, "full": full, "brainscore-v4": brainscore_v4}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="brain_benchmarks.bench"))
