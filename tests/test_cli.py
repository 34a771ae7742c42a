"""The shared command-line convention (nmnc.cli): every entry point answers ``--help``; errors a
user can cause are one line on stderr, exit code 2, no traceback, before any work is done."""

import importlib
import importlib.util
import json
import time
from pathlib import Path

import pandas as pd
import pytest

from nmnc.errors import NmncError, run_cli

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = [
    "nmnc.train",
    "nmnc.analyze",
    "nmnc.timing",
    "model_zoo",
    "model_zoo.build",
    "model_zoo.plugin",
    "brain_benchmarks.score",
    "brain_benchmarks.report",
    "brain_benchmarks.main",
    "brain_benchmarks.grid",
    "brain_benchmarks.recurrent",
    "brain_benchmarks.timing",
]


def main_of(module: str):
    """The ``main`` of ``python -m module`` (a package's ``__main__``) or of a script path."""
    if module.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(module).stem, ROOT / module)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.main
    mod = importlib.import_module(module)
    if not hasattr(mod, "main"):
        mod = importlib.import_module(f"{module}.__main__")
    return mod.main


@pytest.mark.parametrize(
    "module, argv",
    [(m, ["--help"]) for m in ENTRY_POINTS]
    + [
        ("brain_benchmarks.timing", [c, "--help"])
        for c in ("extraction", "scoring", "brainscore-v4")
    ]
    + [(f"scripts/{s}.py", ["--help"]) for s in ("gpu_check", "loader_bench")]
    + [(f"scripts/{s}.py", ["--help"]) for s in ("ddp_check", "manifold_bench")],
)
def test_help(module, argv, capsys):
    main = main_of(module)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    assert "usage:" in capsys.readouterr().out


def _existing_file(tmp_path: Path) -> str:
    f = tmp_path / "taken.txt"
    f.write_text("not a folder\n")
    return str(f)


def _results(tmp_path: Path) -> str:
    f = tmp_path / "results.csv"
    f.write_text("model,benchmark,layer,committed,score\nx,Cowley2023.V4-pls,conv3,True,0.5\n")
    return str(f)


ERRORS = {
    "report --out FILE": (
        "brain_benchmarks.report",
        lambda t: ["--out", _existing_file(t), "--results", _results(t)],
        "is an existing file",
    ),
    "plugin --out FILE": (
        "model_zoo.plugin",
        lambda t: ["nmnc_cnn", "--out", _existing_file(t)],
        "is an existing file",
    ),
    "zoo plugin --out FILE": (
        "model_zoo",
        lambda t: ["plugin", "nmnc_cnn", "--out", _existing_file(t)],
        "is an existing file",
    ),
    "timing unknown key": (
        "brain_benchmarks.timing",
        lambda t: ["extraction", "--set", "imagez=3"],
        "did you mean 'images'",
    ),
    "timing bad int": (
        "brain_benchmarks.timing",
        lambda t: ["extraction", "--set", "repeats=x"],
        "repeats='x'",
    ),
    "timing bad int v4": (
        "brain_benchmarks.timing",
        lambda t: ["brainscore-v4", "--set", "splits=x"],
        "splits='x'",
    ),
    "timing scoring takes no settings": (
        "brain_benchmarks.timing",
        lambda t: ["scoring", "--model", "pixels", "--set", "repeats=x"],
        "no --set settings",
    ),
    "timing model is a flag": (
        "brain_benchmarks.timing",
        lambda t: ["extraction", "--set", "model=pixels"],
        "--model",
    ),
    "nmnc timing unknown key": (
        "nmnc.timing",
        lambda t: ["cost", "--set", "Q=3"],
        "unknown cost setting 'Q'",
    ),
    "gpu_check unknown key": (
        "scripts/gpu_check.py",
        lambda t: ["--set", "step_bp=5"],
        "did you mean 'steps_bp'",
    ),
    "gpu_check --out FILE": (
        "scripts/gpu_check.py",
        lambda t: ["--out", _existing_file(t)],
        "is an existing file",
    ),
    "loader_bench unknown key": (
        "scripts/loader_bench.py",
        lambda t: ["--set", "worker=2"],
        "did you mean 'workers'",
    ),
    "ddp_check nproc": (
        "scripts/ddp_check.py",
        lambda t: ["--set", "nproc=3"],
        "nproc must be at least 2 and divide batch_size",
    ),
    "manifold_bench unknown model": (
        "scripts/manifold_bench.py",
        lambda t: ["--set", "models=resnet19"],
        "did you mean 'resnet18'",
    ),
    "loader_bench no folder": (
        "scripts/loader_bench.py",
        lambda t: ["--set", f"folder={t}/none"],
        "no train/ folder in",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_user_errors_are_one_line(case, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NMNC_ZOO", str(tmp_path / "zoo"))  # no zoo weights: nothing to build
    module, argv, says = ERRORS[case]
    main = main_of(module)
    argv = argv(tmp_path)
    capsys.readouterr()
    t = time.perf_counter()
    code = run_cli(main, argv, prog=module)
    seconds = time.perf_counter() - t
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and says in err
    assert seconds < 10  # refused before any work
    assert not (tmp_path / "zoo").exists()


def test_timing_sets_make_the_config(capsys):
    main = main_of("brain_benchmarks.timing")
    argv = ["brainscore-v4", "--set", "models=bp_cnn,vnc_cnn", "--set", "sessions=090923,190923"]
    argv += ["--set", "splits=5", "--set", "layer=3", "--set", "splits=4", "--print-config"]
    assert run_cli(main, argv) == 0
    cfg = json.loads(capsys.readouterr().out)
    # lists are comma-separated; session ids and layer names stay text; later pairs win
    assert cfg == {
        "models": ["bp_cnn", "vnc_cnn"],
        "benchmark": "Cowley2023.V4-pls",
        "sessions": ["090923", "190923"],
        "splits": 4,
        "layer": "3",
        "data_root": None,
    }
    argv = ["extraction", "--model", "pixels", "--set", "images=10", "repeats=1", "--print-config"]
    assert run_cli(main, argv) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg == {"model": "pixels", "images": 10, "repeats": 1, "data_root": None}


def test_gpu_check_print_config(tmp_path, capsys):
    main = main_of("scripts/gpu_check.py")
    out = tmp_path / "gpu"
    argv = ["--set", "steps_bp=5", "--set", "steps_noise=3", "--out", str(out), "--print-config"]
    assert run_cli(main, argv) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert (cfg["steps_bp"], cfg["steps_noise"], cfg["out"]) == (5, 3, str(out))
    assert not out.exists()


def test_loader_bench_tiny_run_prints_its_table(tmp_path, capsys):
    """A generated folder, one worker, a narrow resnet18: every row is measured and written."""
    main = main_of("scripts/loader_bench.py")
    sets = ["make_folder=8", "make_classes=2", "make_size=96,72", "decode_images=4"]
    sets += ["batch_size=4", "loader_batches=1", "workers=1", "width=0.0625", "device=cpu"]
    assert run_cli(main, ["--set", *sets, "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    rows = json.loads((tmp_path / "loader_bench.json").read_text())
    assert len(rows) == 6 and all(r["images_per_s"] > 0 for r in rows)
    for what in ("decode, PIL", "training loader, batch 4", "BP on resnet18 (width 0.0625)"):
        assert what in table


def test_plugin_reads_a_results_folder_and_old_tables(tmp_path):
    from model_zoo.plugin import committed_layers, region_species

    assert region_species("Cowley2023.V4-pls") == ("V4", "")
    assert region_species("Kriegeskorte2008.monkeyIT-rsa") == ("IT", "macaque")
    assert region_species("Kriegeskorte2008.humanIT-rsa") == ("IT", "human")
    rows = [
        ("Kriegeskorte2008.humanIT-rsa", "conv2"),
        ("Kriegeskorte2008.monkeyIT-rsa", "conv4"),
        ("Cowley2023.V4-pls", "conv3"),
    ]
    old = pd.DataFrame(
        [
            {"model": "m", "checkpoint_hash": "h", "benchmark": b, "layer": layer}
            | {"committed": True, "score": 0.5}
            for b, layer in rows
        ]
    )  # written before region and species were columns
    old.to_csv(tmp_path / "results.csv", index=False)
    assert committed_layers(str(tmp_path), "h") == {"V4": "conv3", "IT": "conv4"}  # macaque IT
    assert committed_layers(str(tmp_path / "results.csv"), "other") == {}
    with pytest.raises(NmncError, match="no results table at"):  # a table given must exist
        committed_layers(str(tmp_path / "nothing-here"), "h")
