"""The bad-input catalogue of issue 13, declared once as data: every case runs through its command
line (in this process) and must be refused with exit code 2 and one line on stderr holding the
given phrase, no traceback, before any work (nothing is written under --out), and no payload of a
poisoned file may run.

``{run}`` is a small trained run folder, ``{evil}`` a checkpoint whose pickle would create
``{marker}``, ``{mismatch}`` a checkpoint whose weights do not fit its model, ``{file}`` an
existing text file, ``{ro}`` a folder this process cannot write, ``{out}`` a fresh output folder.
"""

import os
import pickle
import shutil
import subprocess

import pytest
import torch

from nmnc.errors import run_cli

SMALL = ["--train-examples", "64", "--batch-size", "32", "--quiet", "--set", "eval_examples=100"]
TRAIN = ["nmnc.train", "--out", "{out}", "--steps", "2", *SMALL]
ALIGN = ["nmnc.analyze", "alignment", "--checkpoint", "{run}", "--out", "{out}", "--quiet"]
GRADIENT = ["nmnc.analyze", "gradient", "--checkpoint", "{run}", "--out", "{out}", "--quiet"]
SWEEP = ["nmnc.analyze", "width-sweep", "--out", "{out}", "--quiet"]
SCORE = ["brain_benchmarks.score", "--benchmark", "Kriegeskorte2008.monkeyIT-rsa", "--quiet"]
PLUGIN = ["model_zoo", "plugin", "--bundle-weights", "--quiet"]
CODE = "names posix.system: code, not"
PDM = "neurogym:PerceptualDecisionMaking-v0"
RNN = [*TRAIN, "--model", "rnn", "--dataset", PDM]

CASES = [
    # settings that cannot train, or would train something other than asked
    ("k=0", [*TRAIN, "--rule", "nmnc", "--set", "k=0"], "k must be at least 1, got 0"),
    ("P=0", [*TRAIN, "--rule", "vnc", "--set", "P=0"], "P must be at least 1, got 0"),
    ("k above every layer", [*TRAIN, "--rule", "nmnc", "--set", "k=100000"], "larger than every"),
    ("width=0", [*TRAIN, "--set", "width=0"], "width must be positive, got 0"),
    ("width=-1", [*TRAIN, "--set", "width=-1"], "width must be positive, got -1"),
    ("unknown train.key", [*TRAIN, "--set", "train.foo=1"], "unknown training setting 'foo'"),
    ("unknown key", [*TRAIN, "--set", "lrr=0.1"], "did you mean 'lr'"),
    ("steps 0", [*TRAIN, "--steps", "0"], "--steps must be at least 1, got 0"),
    ("steps -3", [*TRAIN, "--steps", "-3"], "--steps must be at least 1, got -3"),
    ("epochs 0", [*TRAIN[:3], *SMALL, "--epochs", "0"], "epochs must be positive"),
    ("lr abc", [*TRAIN, "--lr", "abc"], "argument --lr: invalid float value: 'abc'"),
    ("lr -1", [*TRAIN, "--lr", "-1"], "lr must be a positive number"),
    ("batch 0", [*TRAIN, "--batch-size", "0"], "batch_size must be at least 1"),
    ("examples 0", [*TRAIN, "--train-examples", "0"], "--train-examples must be at least 1"),
    ("unknown model", [*TRAIN, "--model", "cnnn"], "unknown model 'cnnn'"),
    ("unknown rule", [*TRAIN, "--rule", "nmcn"], "unknown rule 'nmcn'"),
    ("no data", [*TRAIN, "--data-root", "{out}/none"], "cifar10: no data found"),
    ("images -5", [*ALIGN, "--set", "images=-5"], "images must be at least 1, got -5"),
    ("images 0", [*ALIGN, "--set", "images=0"], "images must be at least 1, got 0"),
    ("P list 0", [*GRADIENT, "--set", "P=0"], "P must be one or more whole numbers"),
    ("k list abc", [*GRADIENT, "--set", "k=abc"], "is not a comma-separated list of int"),
    ("widths abc", [*SWEEP, "--set", "widths=0.25,abc"], "'0.25,abc' is not a comma-separated"),
    ("widths 0", [*SWEEP, "--set", "widths=0,1"], "widths must be positive numbers"),
    ("missing subcommand", ["nmnc.analyze"], "the following arguments are required: COMMAND"),
    (
        "n-boot 0",
        ["brain_benchmarks.report", "--results", "{table}", "--out", "{out}", "--n-boot", "0"],
        "n_boot (--n-boot) must be at least 100",
    ),
    ("exclusive flags", ["model_zoo", "build", "nmnc_cnn", "--gpu", "--cpu"], "not allowed with"),
    # recurrent models and sequence datasets
    ("rnn on images", [*TRAIN, "--model", "rnn"], "model rnn takes sequences but dataset cifar10"),
    ("cnn on a task", [*TRAIN, "--dataset", PDM], "model cnn takes images but dataset neurogym:"),
    ("unknown task", [*RNN[:-1], PDM[:-4]], "did you mean 'PerceptualDecisionMaking-v0'"),
    ("family without task", [*RNN[:-1], "neurogym"], "write neurogym:<TaskId>"),
    ("unknown task key", [*RNN, "--set", "data.dtt=50"], "'dtt' (did you mean 'dt'?)"),
    ("timing typo", [*RNN, "--set", "data.timing.stimulu=5"], "did you mean 'stimulus'"),
    ("seq_len 0", [*RNN, "--set", "data.seq_len=0"], "data.seq_len must be at least 1, got 0"),
    ("reward-only task", [*RNN[:-1], "neurogym:Bandit-v0"], "no ground truth"),
    ("scifar10 settings", [*RNN[:-1], "scifar10", "--set", "data.x=1"], "has no settings"),
    ("cifar10 settings", [*TRAIN, "--set", "data.x=1"], "dataset cifar10 has no settings"),
    ("unknown time", [*RNN, "--rule", "vnc", "--set", "time=later"], "unknown time 'later'"),
    (
        "amortised rnn",
        [*RNN, "--rule", "nmnc", "--set", "feedback=amortised"],
        "recurrent models take feedback=example",
    ),
    ("alpha 0", [*RNN, "--set", "alpha=0"], "alpha (dt/tau) must be in (0, 1], got 0.0"),
    ("relu gru", [*RNN, "--model", "gru", "--set", "nonlinearity=relu"], "unknown --set key"),
    (
        "image run as recurrent",
        ["nmnc.analyze", "recurrent-gradient", "--checkpoint", "{run}", "--out", "{out}"],
        "not a recurrent model",
    ),
    # files that hold code, or weights of another model
    ("code: resume", ["nmnc.train", "--resume", "{evil_run}", "--quiet"], CODE),
    ("code: analyze", [*ALIGN[:3], "{evil}", "--out", "{out}", "--quiet"], CODE),
    ("code: score", [*SCORE, "--model", "{evil}", "--out", "{out}"], CODE),
    ("code: plugin", [*PLUGIN, "{evil}", "--out", "{out}"], CODE),
    ("code: plain pickle", [*SCORE, "--model", "{evil_plain}", "--out", "{out}"], CODE),
    ("misfit: resume", ["nmnc.train", "--resume", "{mismatch_run}", "--quiet"], "do not fit"),
    ("misfit: analyze", [*ALIGN[:3], "{mismatch}", "--out", "{out}", "--quiet"], "do not fit"),
    ("misfit: score", [*SCORE, "--model", "{mismatch}", "--out", "{out}"], "do not fit"),
    ("misfit: plugin", [*PLUGIN, "{mismatch}", "--out", "{out}"], "do not load into"),
    ("truncated", [*ALIGN[:3], "{truncated}", "--out", "{out}", "--quiet"], "not a readable"),
    # output folders that are files or cannot be written: refused before the work
    ("train --out file", [*TRAIN[:1], "--out", "{file}", *TRAIN[3:]], "is an existing file"),
    ("analyze --out file", [*ALIGN[:5], "{file}"], "is an existing file"),
    ("score --out file", [*SCORE, "--model", "random:cnn", "--out", "{file}"], "got the file"),
    ("plugin --out file", [*PLUGIN, "{run}", "--out", "{file}"], "is an existing file"),
    (
        "report --out file",
        ["brain_benchmarks.report", "--results", "{file}", "--out", "{file}"],
        "is an existing file",
    ),
    ("main --out file", ["brain_benchmarks.main", "--quick", "--out", "{file}"], "existing file"),
    ("train --out under a file", [*TRAIN[:1], "--out", "{file}/run", *TRAIN[3:]], "is a file"),
    ("train --out read-only", [*TRAIN[:1], "--out", "{ro}/run", *TRAIN[3:]], "cannot be written"),
    ("resume read-only", ["nmnc.train", "--resume", "{ro}", "--quiet"], "cannot be written"),
    ("analyze --out read-only", [*ALIGN[:5], "{ro}/a"], "cannot be written"),
    ("score --out read-only", [*SCORE, "--model", "random:cnn", "--out", "{ro}/s"], "cannot be"),
    ("plugin --out read-only", [*PLUGIN, "{run}", "--out", "{ro}/p"], "cannot be written"),
    (
        "report --out read-only",
        ["brain_benchmarks.report", "--results", "{table}", "--out", "{ro}/r"],
        "cannot be written",
    ),
    ("main --out read-only", ["brain_benchmarks.main", "--quick", "--out", "{ro}/m"], "cannot be"),
    ("rescore without --out", [*SCORE, "--model", "random:cnn", "--rescore"], "give --out DIR"),
    (
        "foreign results",
        ["brain_benchmarks.report", "--results", "{file}", "--out", "{out}"],
        "it was not written by brain_benchmarks.score",
    ),
]


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def places(tmp_path_factory, data_root, read_only):
    from brain_benchmarks.results import ResultRow, append_rows
    from nmnc.train import main as train_main

    w = tmp_path_factory.mktemp("catalogue")
    run = w / "run"
    argv = ["--out", str(run), "--steps", "2", *SMALL, "--data-root", str(data_root)]
    assert run_cli(train_main, argv) == 0
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    marker = w / "payload-ran"
    torch.save({"format": ckpt["format"], "x": _Payload(marker)}, w / "evil.pt")
    with open(w / "evil_plain.pt", "wb") as f:
        pickle.dump({"x": _Payload(marker)}, f)
    state = dict(ckpt["model_state"])
    first = next(k for k, v in state.items() if v.dim() == 4)
    state[first] = torch.zeros(3, *state[first].shape[1:])
    torch.save({**ckpt, "model_state": state}, w / "mismatch.pt")
    for name, src in (("evil_run", "evil.pt"), ("mismatch_run", "mismatch.pt")):
        shutil.copytree(run, w / name)
        shutil.copy(w / src, w / name / "checkpoint.pt")
    whole = (run / "checkpoint.pt").read_bytes()
    (w / "truncated.pt").write_bytes(whole[: len(whole) // 2])
    (w / "notes.txt").write_text("my notes\n")
    row = ResultRow("m", "cnn", "bp", 0, "h", "B.IT-rsa", 1, "IT", "macaque", "conv1", True, 0.5)
    append_rows(w / "table" / "results.csv", [row])
    names = ("run", "evil", "evil_plain", "evil_run", "mismatch", "mismatch_run", "truncated")
    paths = {n: str(w / (n + ".pt" if (w / (n + ".pt")).exists() else n)) for n in names}
    return {
        **paths,
        "file": str(w / "notes.txt"),
        "ro": str(read_only),
        "table": str(w / "table"),
        "marker": marker,
    }


def _main(prog: str):
    from importlib import import_module

    mod = import_module(prog)
    return mod.main if hasattr(mod, "main") else import_module(f"{prog}.__main__").main


@pytest.mark.parametrize("argv, phrase", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_in_one_line_before_work(argv, phrase, places, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NMNC_ZOO", str(tmp_path / "zoo"))
    out = tmp_path / "out"
    prog, *args = argv
    args = [a.format(out=out, **places) for a in args]
    code = run_cli(_main(prog), args, prog)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert phrase in err[0] and "Traceback" not in err[0], err
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
    assert not (tmp_path / "cache" / "activations").exists()
    assert not places["marker"].exists(), "a payload ran"


def test_every_python_m_entry_point_is_in_the_help_test():
    """Every module with a ``__main__`` block is an entry point that tests/test_cli.py runs with
    --help (and the catalogue's commands come from that list)."""
    from pathlib import Path

    from test_cli import ENTRY_POINTS

    root = Path(__file__).resolve().parents[1]
    found = set()
    for pkg in ("nmnc", "brain_benchmarks", "model_zoo"):
        for f in (root / pkg).rglob("*.py"):
            if 'if __name__ == "__main__":' in f.read_text():
                mod = ".".join(f.relative_to(root).with_suffix("").parts)
                found.add(mod.removesuffix(".__main__"))
    assert found == set(ENTRY_POINTS)
    assert {c[1][0] for c in CASES} <= found


def test_brainscore_is_imported_without_warnings():
    """Brain-Score's own FutureWarning on import is nothing a user can act on: filtered where we
    import it (a fresh interpreter, every warning shown)."""
    import sys
    from pathlib import Path

    code = (
        "from brain_benchmarks.brainscore_adapter import _bs; _bs()\n"
        "from brainscore_vision.model_helpers.brain_transformation import ModelCommitment\n"
        "from brainscore_vision.benchmark_helpers.neural_common import NeuralBenchmark\n"
    )
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(
        [sys.executable, "-W", "default", "-c", code], cwd=root, capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_brainscore_bars_are_closed_out_when_quiet(monkeypatch, capsys):
    """Brain-Score's own tqdm bars (its cross-validation, its activations) go to stderr; without
    progress they are not shown. Brain-Score's scoring is replaced here by a stand-in that draws
    such a bar (its public data are not here)."""
    from tqdm import tqdm

    from brain_benchmarks import brainscore_adapter as adapter

    class BrainScore:
        def load_benchmark(self, name):
            def run(commitment):
                for _ in tqdm(range(3), desc="cross-validation"):
                    pass
                return 0.5

            return run

    monkeypatch.setattr(adapter, "missing_public_files", lambda name: [])
    monkeypatch.setattr(adapter, "_bs", BrainScore)
    assert adapter.score_public("X.IT-pls", None, progress=False) == 0.5
    assert capsys.readouterr().err == ""
    assert adapter.score_public("X.IT-pls", None) == 0.5
    assert "cross-validation" in capsys.readouterr().err
