"""Malformed user input to the scoring command: each is one line on stderr, exit code 2, no
traceback, and fails before any feature extraction (no activation cache appears).

Benchmark folders are built from real CIFAR-10 test images (seeded choice); their brain data are
seeded functions of the images' pixels, so valid folders have real structure to score.
"""

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from brain_benchmarks.extract import extract
from brain_benchmarks.folder import from_folder_spec
from brain_benchmarks.models import resolve_model
from brain_benchmarks.score import main as score_main
from brain_benchmarks.stimuli import from_arrays
from nmnc.errors import run_cli

ROOT = Path(__file__).resolve().parents[1]
N_NEURAL, N_RSA = 60, 12


@pytest.fixture(scope="module")
def jpegs(data_root) -> list[bytes]:
    """60 CIFAR-10 test images (32x32 JPEG), a seeded choice over all classes."""
    with zipfile.ZipFile(data_root / "cifar10" / "cifar10-jpeg.zip") as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("test/") and n.endswith(".jpg"))
        pick = np.random.default_rng(0).choice(len(names), N_NEURAL, replace=False)
        return [zf.read(names[i]) for i in pick]


def _pixels(jpegs: list[bytes]) -> np.ndarray:
    x = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), np.float64) for b in jpegs])
    x = x.reshape(len(x), -1)
    return (x - x.mean(0)) / (x.std(0) + 1e-9)


def rdms(jpegs: list[bytes], subjects: int = 3) -> np.ndarray:
    """Correlation-distance RDMs of the pixels plus seeded noise, one per subject."""
    x, rng = _pixels(jpegs), np.random.default_rng(1)
    return np.stack([1 - np.corrcoef(x + rng.normal(0, 2, x.shape)) for _ in range(subjects)])


def trials(jpegs: list[bytes], neurons: int = 8, repeats: int = 2) -> np.ndarray:
    """neurons x images x repeats: a seeded linear read-out of the pixels plus trial noise."""
    x, rng = _pixels(jpegs), np.random.default_rng(2)
    mean = x @ rng.normal(0, 1 / np.sqrt(x.shape[1]), (x.shape[1], neurons))
    return mean.T[:, :, None] + rng.normal(0, 0.5, (neurons, len(jpegs), repeats))


def make_folder(root: Path, jpegs: list[bytes], kind: str, n: int, **meta) -> Path:
    """A valid benchmark folder of ``kind`` on the first ``n`` images; ``meta`` overrides keys of
    benchmark.json (None removes one)."""
    folder = root / f"{kind}{n}"
    (folder / "stimuli").mkdir(parents=True)
    for i, data in enumerate(jpegs[:n]):
        (folder / "stimuli" / f"img_{i:03d}.jpg").write_bytes(data)
    base = {"name": f"Test.{kind}", "region": "IT", "species": "macaque", "kind": kind}
    body = {k: v for k, v in {**base, **meta}.items() if v is not None}
    (folder / "benchmark.json").write_text(json.dumps(body))
    if kind == "rsa":
        np.save(folder / "rdms.npy", rdms(jpegs[:n]))
    else:
        np.save(folder / "responses.npy", trials(jpegs[:n]))
    return folder


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty activation cache and zoo in tmp_path."""
    monkeypatch.setenv("NMNC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NMNC_ZOO", str(tmp_path / "zoo"))
    return tmp_path


def refused(tmp: Path, capsys, benchmark, model: str = "random:cnn") -> str:
    """Score ``model`` on ``benchmark`` through the command line; assert it is refused as user
    input should be, before any extraction, and return the one line on stderr."""
    argv = ["--model", model, "--benchmark", str(benchmark), "--out", str(tmp / "out"), "--quiet"]
    code = run_cli(score_main, argv, "brain_benchmarks.score")
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp / "cache" / "activations").exists()
    assert not (tmp / "out" / "results.csv").exists()
    return err.strip()


def test_valid_folders_load_and_score(isolated, jpegs, capsys):
    neural = from_folder_spec(make_folder(isolated, jpegs, "neural", N_NEURAL, splits=3))
    assert (neural.kind, neural.n_stimuli, neural.splits) == ("neural", N_NEURAL, 3)
    assert len(neural.pca_images) == 1000  # the default reduction's PCA images, as for V4
    (session,) = neural.sessions
    assert session["trials"].shape == (8, N_NEURAL, 2)
    assert np.allclose(session["responses"], session["trials"].mean(2).T)
    folder = make_folder(isolated, jpegs, "rsa", N_RSA, method="pearson", version=2)
    rsa = from_folder_spec(folder)
    assert (rsa.kind, rsa.n_stimuli, rsa.method, rsa.version) == ("rsa", N_RSA, "pearson", 2)
    assert rsa.rdms.shape == (3, N_RSA, N_RSA)
    # the same command that refuses bad folders extracts and scores a good one
    argv = ["--model", "pixels", "--benchmark", str(folder), "--out", str(isolated / "out")]
    assert run_cli(score_main, [*argv, "--quiet"]) == 0
    assert (isolated / "cache" / "activations").is_dir()
    assert len((isolated / "out" / "results.csv").read_text().splitlines()) == 3


@pytest.mark.parametrize(
    "body, phrase",
    [
        ([], "must hold a JSON object ({...}), got a list"),
        ('"rsa"', "must hold a JSON object ({...}), got a str"),
    ],
)
def test_benchmark_json_not_an_object(isolated, jpegs, capsys, body, phrase):
    folder = make_folder(isolated, jpegs, "rsa", N_RSA)
    (folder / "benchmark.json").write_text(json.dumps(body))
    assert phrase in refused(isolated, capsys, folder)


@pytest.mark.parametrize("key", ["version", "splits", "max_features"])
@pytest.mark.parametrize("value", ["two", 2.5, True])
def test_non_integer_settings(isolated, jpegs, capsys, key, value):
    folder = make_folder(isolated, jpegs, "neural", N_NEURAL, **{key: value})
    err = refused(isolated, capsys, folder)
    assert f"'{key}' must be " in err and json.dumps(value) in err and "benchmark.json" in err


@pytest.mark.parametrize(
    "kind, meta, phrase",
    [
        ("rsa", {"method": "cosine"}, "'method' must be one of spearman, kendall, tau-a, pearson"),
        ("neural", {"max_features": 24}, "0 (no reduction) or an integer >= 25"),
        ("neural", {"splits": 1}, "'splits' must be an integer >= 2"),
        ("neural", {"splits": 7}, "folds of at least 5 images; give an integer from 2 to 6"),
        ("neural", {"methd": "spearman"}, "unknown key 'methd'; did you mean 'method'?"),
        ("neural", {"method": "spearman"}, "'method' applies to kind 'rsa' only"),
        ("rsa", {"splits": 3}, "'splits' applies to kind 'neural' only"),
        ("rsa", {"stimuli": "img_000.jpg"}, "'stimuli' must be a list of distinct file names"),
        ("rsa", {"name": "Kriegeskorte2008.monkeyIT-rsa"}, "is a built-in benchmark id"),
        ("rsa", {"region": None}, "lacks region"),
    ],
)
def test_bad_settings(isolated, jpegs, capsys, kind, meta, phrase):
    folder = make_folder(isolated, jpegs, kind, N_NEURAL if kind == "neural" else N_RSA, **meta)
    assert phrase in refused(isolated, capsys, folder)


def test_too_few_images(isolated, jpegs, capsys):
    neural = make_folder(isolated, jpegs, "neural", 12)
    assert "12 images, and kind 'neural' needs at least 50" in refused(isolated, capsys, neural)
    rsa = make_folder(isolated, jpegs, "rsa", 5)
    assert "5 images, and kind 'rsa' needs at least 6" in refused(isolated, capsys, rsa)
    one = make_folder(isolated / "one", jpegs, "rsa", 1)
    assert "1 images, and kind 'rsa' needs at least 6" in refused(isolated, capsys, one)


def test_a_corrupt_stimulus_is_named(isolated, jpegs, capsys):
    folder = make_folder(isolated, jpegs, "rsa", N_RSA)
    bad = folder / "stimuli" / "img_003.jpg"
    bad.write_bytes(bad.read_bytes()[:40])  # cut off, as by a failed copy
    assert f"cannot read image {bad}" in refused(isolated, capsys, folder)


def test_quiet_scoring_is_silent(isolated, jpegs, capsys):
    """--quiet: no progress bars (the PLS fits' included), tables or library warnings."""
    folder = make_folder(isolated, jpegs, "neural", N_NEURAL, splits=3)
    argv = ["--model", "random:cnn", "--benchmark", str(folder), "--out", str(isolated / "o")]
    assert run_cli(score_main, [*argv, "--quiet"], "brain_benchmarks.score") == 0
    assert capsys.readouterr().err == ""


def test_one_repeat_is_no_ceiling(isolated, jpegs, capsys):
    folder = make_folder(isolated, jpegs, "neural", N_NEURAL, max_features=0)
    np.save(folder / "responses.npy", trials(jpegs, repeats=1))
    err = refused(isolated, capsys, folder)
    assert "1 repeat per image gives no ceiling, which needs at least 2" in err
    assert "give neurons x images (no ceiling)" in err
    np.save(folder / "responses.npy", trials(jpegs, repeats=1)[..., 0])  # no ceiling: accepted
    accepted = from_folder_spec(folder)
    assert accepted.sessions[0]["trials"] is None and accepted.pca_images is None


def test_degenerate_neurons_and_unreliable_repeats(isolated, jpegs, capsys):
    folder = make_folder(isolated, jpegs, "neural", N_NEURAL, max_features=0)
    resp = trials(jpegs, repeats=4)
    resp[3] = 7.0  # a neuron with the same response to every image and repeat
    np.save(folder / "responses.npy", resp)
    err = refused(isolated, capsys, folder)
    assert "1 neurons respond the same to every image (first: neuron 3)" in err
    noise = np.random.default_rng(5).normal(size=resp.shape)  # repeats share no signal
    np.save(folder / "responses.npy", noise)
    assert "the repeats are not reliable" in refused(isolated, capsys, folder)
    np.save(folder / "responses.npy", trials(jpegs, repeats=4))  # a real signal: accepted
    assert from_folder_spec(folder).ceiling() > 0.5


def test_stimulus_listed_twice(isolated, jpegs, capsys):
    names = [f"img_{i:03d}.jpg" for i in range(N_RSA)]
    folder = make_folder(isolated, jpegs, "rsa", N_RSA, stimuli=names[:-1] + ["img_003.jpg"])
    assert "the 'stimuli' list names img_003.jpg twice" in refused(isolated, capsys, folder)


def test_zip_with_one_name_in_two_folders(isolated, jpegs, capsys):
    folder = make_folder(isolated, jpegs, "rsa", N_RSA)
    for f in sorted((folder / "stimuli").iterdir()):
        f.unlink()
    (folder / "stimuli").rmdir()
    with zipfile.ZipFile(folder / "stimuli.zip", "w") as zf:
        for i in range(N_RSA - 1):
            zf.writestr(f"a/img_{i:03d}.jpg", jpegs[i])
        zf.writestr("b/img_000.jpg", jpegs[N_RSA - 1])
    err = refused(isolated, capsys, folder)
    assert "two images are named img_000.jpg (a/img_000.jpg and b/img_000.jpg)" in err
    with zipfile.ZipFile(folder / "stimuli.zip", "w") as zf:  # unsafe names are still refused
        zf.writestr("../evil.jpg", jpegs[0])
        for i in range(1, N_RSA):
            zf.writestr(f"a/img_{i:03d}.jpg", jpegs[i])
    assert "../evil.jpg" in refused(isolated, capsys, folder)


def _poke(rdms: np.ndarray, value: float) -> np.ndarray:
    """``rdms`` (subjects x N x N) with one dissimilarity pair of the first subject set to
    ``value``."""
    rdms = rdms.copy()
    rdms[0, 1, 2] = rdms[0, 2, 1] = value
    return rdms


@pytest.mark.parametrize(
    "kind, write, phrase",
    [
        ("rsa", lambda f: f.write_bytes(b"\x93NUMPY garbage"), "cannot be read as a .npy array"),
        (
            "neural",
            lambda f: np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True),
            "cannot be read as a .npy array",
        ),
        ("neural", lambda f: np.save(f, np.array(["a", "b"])), "holds a <U1 array"),
        ("neural", lambda f: np.save(f, np.full((8, N_NEURAL), np.inf)), "contains inf"),
        ("neural", lambda f: np.save(f, np.zeros((8, N_NEURAL - 1))), "expected neurons x 60"),
        ("rsa", lambda f: np.save(f, np.ones((N_RSA, N_RSA))), "same dissimilarity for every"),
        ("rsa", lambda f: np.save(f, _poke(np.load(f), np.inf)), "contains inf"),
        ("rsa", lambda f: np.save(f, _poke(np.load(f), np.nan)), "RDMs contain NaN"),
    ],
)
def test_broken_data_files(isolated, jpegs, capsys, kind, write, phrase):
    folder = make_folder(isolated, jpegs, kind, N_NEURAL if kind == "neural" else N_RSA)
    write(folder / ("rdms.npy" if kind == "rsa" else "responses.npy"))
    assert phrase in refused(isolated, capsys, folder)


@pytest.mark.parametrize(
    "model, phrase",
    [
        ("random:cnn@x", "the seed after '@' must be an integer, e.g. random:cnn@1"),
        ("random:cnn@²", "the seed after '@' must be an integer"),
        ("random:cnn@99999999999999999999", "e.g. random:cnn@1 (0 to 2**63-1)"),
        ("torchvision:resnet19", "unknown torchvision model 'resnet19' (did you mean 'resnet18'?)"),
        ("torchvision:resnet18@1=w.pth", "not both"),
        ("torchvision:resnet18=/nonexistent/w.pth", "no weights file /nonexistent/w.pth"),
    ],
)
def test_bad_model_ids(isolated, capsys, model, phrase):
    err = refused(isolated, capsys, "Kriegeskorte2008.monkeyIT-rsa", model)
    assert phrase in err


def test_torchvision_weights_that_do_not_fit(isolated, capsys):
    bad = isolated / "bad.pth"
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    err = refused(isolated, capsys, "Kriegeskorte2008.monkeyIT-rsa", f"torchvision:resnet18={bad}")
    assert "does not fit torchvision resnet18: 102 missing (first: conv1.weight)" in err
    bad.write_bytes(b"not a torch file")
    err = refused(isolated, capsys, "Kriegeskorte2008.monkeyIT-rsa", f"torchvision:resnet18={bad}")
    assert "cannot be read by torch.load" in err


def test_torchvision_reference_models(isolated, jpegs):
    images = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in jpegs[:4]])
    stim = from_arrays("cifar4", images)
    specs = ("torchvision:resnet18@1", "torchvision:resnet18@1", "torchvision:resnet18")
    a, b, c = (resolve_model(s) for s in specs)
    assert a.hash == b.hash != c.hash
    assert (a.arch, a.rule, a.seed) == ("resnet18-tv", "reference", 1)
    assert (a.input_size, a.mean) == (224, (0.485, 0.456, 0.406))
    feats = extract(a, stim, progress=False)
    widths = {k: v.shape for k, v in feats.items()}
    assert widths == {
        "maxpool": (4, 64 * 56 * 56),
        "layer1": (4, 64 * 56 * 56),
        "layer2": (4, 128 * 28 * 28),
        "layer3": (4, 256 * 14 * 14),
        "layer4": (4, 512 * 7 * 7),
        "avgpool": (4, 512),
    }
    assert np.isfinite(feats["avgpool"]).all() and np.asarray(feats["avgpool"]).std() > 0
    # the user's pretrained weights: a 10-class head is read from the state dict
    torch.manual_seed(3)
    import torchvision

    net = torchvision.models.resnet18(num_classes=10)
    torch.save(net.state_dict(), isolated / "w.pth")
    p = resolve_model(f"torchvision:resnet18={isolated / 'w.pth'}")
    assert (p.rule, p.seed, p.net.fc.out_features) == ("pretrained", None, 10)
    assert torch.equal(p.net.conv1.weight, net.conv1.weight) and p.hash not in (a.hash, c.hash)
    alex = resolve_model("torchvision:alexnet")
    feats = extract(alex, stim, progress=False)
    assert feats["features.12"].shape == (4, 256 * 6 * 6)
    assert feats["classifier.5"].shape == (4, 4096)


def test_no_traceback_at_process_level(isolated, jpegs):
    folder = make_folder(isolated, jpegs, "rsa", N_RSA)
    (folder / "benchmark.json").write_text("[1, 2]")
    cmd = [sys.executable, "-m", "brain_benchmarks.score", "--model", "random:cnn"]
    cmd += ["--benchmark", str(folder), "--out", str(isolated / "out"), "--quiet"]
    r = subprocess.run(cmd, cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"brain_benchmarks.score: error: {folder / 'benchmark.json'} must hold a JSON object "
        '({...}), got a list; write e.g. {"name": "MyLab2025.IT-rsa", "region": "IT", '
        '"species": "macaque", "kind": "rsa"}'
    ]
    assert not (isolated / "cache" / "activations").exists()
