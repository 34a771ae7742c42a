"""Brain-Score plugins (model_zoo.plugin): self-contained plain-torch networks identical to nmnc's,
weights fetched and checked, committed regions only, pinned scores, and the done-when check: a
generated plugin installed into a fresh virtual environment from its own requirements.txt, with
this repository not importable, is loaded and scored by brainscore_vision."""

import ast
import dataclasses
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from nmnc.errors import NmncError, run_cli

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "train_examples": 320,
    "batch_size": 32,
    "width": 0.25,
    "P": 2,
    "k": 4,
    "eval_every": 10,
    "eval_examples": 100,
}
PIN = "Cowley2023.V4-pls:210325"  # the V4 session with single trials (640 images)
PIN_NAME = "Cowley2023.V4-pls.210325"
OURS = ("nmnc", "model_zoo", "brain_benchmarks")
# what a plugin may import: the standard library, PyPI packages and Brain-Score's harness
PLUGIN_IMPORTS = {"brainscore_vision", "brainscore_core", "torch", "numpy", "PIL", "pytest"} | {
    "__future__", "functools", "hashlib", "importlib", "json", "os", "pathlib", "tempfile", "time",
    "urllib",
}  # fmt: skip


# ---- fixtures --------------------------------------------------------------------------------
class Server:
    """An HTTP server on 127.0.0.1 serving the files of a folder; ``/slow/<name>`` answers after
    ``delay`` seconds; ``hits`` lists the paths asked for."""

    def __init__(self, root: Path, delay: float = 3.0):
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                name = self.path.rsplit("/", 1)[-1]
                if self.path.startswith("/slow/"):
                    time.sleep(delay)
                f = root / name
                if not f.is_file():
                    self.send_error(404)
                    return
                data = f.read_bytes()
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def env(tmp_path_factory, data_root):
    """A zoo, caches and Brain-Score's result cache in a temporary folder, for the module."""
    tmp = tmp_path_factory.mktemp("plugin")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NMNC_ZOO", str(tmp / "zoo"))
        mp.setenv("RESULTCACHING_HOME", str(tmp / "result_caching"))
        mp.setenv("BS_INSTALL_DEPENDENCIES", "no")
        yield tmp


@pytest.fixture(scope="module")
def zoo(env):
    """A tiny nmnc_cnn zoo model (trained for a few steps on real CIFAR-10)."""
    from model_zoo import BuildConfig, build_entry

    return build_entry(BuildConfig("nmnc_cnn", gpu=False, sets=TINY, progress=False))


def results_table(path: Path, checkpoint_hash: str, regions: dict) -> str:
    """A results table with committed rows (region -> layer) for these weights, a row whose
    layer is no layer of the network, a public Brain-Score row (its layer is Brain-Score's
    choice, never a commitment of ours) and a row of other weights."""
    from brain_benchmarks.results import append_rows

    bench = {"V1": "Mine2024.V1-pls", "V2": "Mine2024.V2-pls"}
    bench |= {"V4": "Cowley2023.V4-pls", "IT": "Kriegeskorte2008.monkeyIT-rsa"}
    rows = [
        {"model": "m", "checkpoint_hash": checkpoint_hash, "benchmark": bench[region]}
        | {"layer": layer, "committed": True, "score": 0.5, "region": region}
        | {"species": "macaque"}
        for region, layer in regions.items()
    ]
    rows.append(
        {
            "model": "m",
            "checkpoint_hash": checkpoint_hash,
            "benchmark": "MajajHong2015public.IT-pls",
        }
        | {"layer": "region_layer_map", "committed": True, "score": 0.3, "region": "IT"}
        | {"species": "macaque"}
    )
    rows.append(
        {
            "model": "m",
            "checkpoint_hash": checkpoint_hash,
            "benchmark": "MajajHong2015public.V4-pls",
        }
        | {"layer": "conv1", "committed": True, "score": 0.3, "region": "V4"}
        | {"species": "macaque"}
    )
    rows.append(
        {"model": "m", "checkpoint_hash": "other", "benchmark": "MajajHong2015public.V1-pls"}
        | {"layer": "conv4", "committed": True, "score": 0.3, "region": "V1"}
        | {"species": "macaque"}
    )
    append_rows(path, rows)
    return str(path)


@pytest.fixture(scope="module")
def served(env, zoo):
    """The plugin of the zoo model's run folder (a checkpoint path) with V4 committed and pinned
    on a local benchmark; its weights published by a local HTTP server."""
    from model_zoo import PluginConfig, write_plugin
    from nmnc.checkpoint import load_checkpoint

    run = env / "zoo" / "nmnc_cnn"
    h = load_checkpoint(run).weights_hash
    out = env / "plugins"
    server = Server(out / "weights")
    url = f"{server.url}/nmnc_cnn-{h}.pt"
    results = results_table(env / "results.csv", h, {"V4": "conv3"})
    info = write_plugin(PluginConfig(str(run), str(out), url, results, pins=(PIN,)))
    yield info, server
    server.close()


def import_plugin(folder: Path):
    """The plugin package imported in this process from its folder (its registration runs)."""
    name = f"_test_plugin_{folder.name}_{time.monotonic_ns()}"
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return importlib.import_module(f"{name}.model")


# ---- the plain-torch networks ----------------------------------------------------------------
def _modules_by_name(net, name):
    """The module a Brain-Score PytorchWrapper hooks for ``name`` (its get_layer walk)."""
    module = net
    for part in name.split("."):
        module = module._modules.get(part)
    return module


def _hidden_outputs(net, layers, x):
    """Hidden-layer outputs recorded by forward hooks on the modules of those names."""
    out, hooks = {}, []
    for layer in layers:
        hook = _modules_by_name(net, layer).register_forward_hook(
            lambda _m, _i, o, layer=layer: out.__setitem__(layer, o.detach().clone())
        )
        hooks.append(hook)
    with torch.no_grad():
        logits = net(x)
    for hook in hooks:
        hook.remove()
    return logits, out


def _arch_cases():
    from nmnc.models import MODELS

    return [(name, norm) for name in MODELS.names(kind="") for norm in ("none", "bn")]


@pytest.mark.parametrize("arch, norm", _arch_cases())
def test_plain_network_equals_nmnc_network(arch, norm):
    """For every registered architecture: the plugin's plain network loads nmnc's state dict
    strictly, has the same named modules, and gives identical logits and hidden layers."""
    from model_zoo import plain
    from nmnc.models import build_model

    torch.manual_seed(0)
    net = build_model(arch, width=0.0625, norm=norm)
    x = torch.randn(3, 3, net.input_size, net.input_size)
    with torch.no_grad():  # BatchNorm running statistics away from their initial values
        net.train()(x + 1)
        net(x * 2)
    net.eval()
    twin = plain.build(arch, dataclasses.asdict(net.settings))
    twin.load_state_dict(net.state_dict(), strict=True)
    twin.eval()
    assert [n for n, _ in twin.named_modules()] == [n for n, _ in net.named_modules()]
    assert twin.hidden_layers == net.hidden_layers
    logits, hidden = _hidden_outputs(net, net.hidden_layers, x)
    twin_logits, twin_hidden = _hidden_outputs(twin, net.hidden_layers, x)
    assert torch.equal(logits, twin_logits)
    assert list(twin_hidden) == list(hidden) == net.hidden_layers
    for layer in net.hidden_layers:
        assert torch.equal(hidden[layer], twin_hidden[layer]), layer
    if norm == "bn":  # the running statistics matter: they are not at their initial values
        assert any(
            not torch.allclose(m.running_var, torch.ones_like(m.running_var))
            for m in net.modules()
            if isinstance(m, torch.nn.BatchNorm2d)
        )


def test_plain_build_refuses_unknown_architecture_and_settings():
    from model_zoo import plain

    with pytest.raises(ValueError, match="unknown architecture 'vgg'; this file builds cnn"):
        plain.build("vgg", {})
    with pytest.raises(ValueError, match="do not fit architecture 'cnn'"):
        plain.build("cnn", {"width": 0.5, "depth": 3})


# ---- weights download ------------------------------------------------------------------------
def test_fetch_weights_checks_the_hash_before_keeping_and_times_out(tmp_path):
    from model_zoo.plain import WeightsError, fetch_weights

    published = tmp_path / "published"
    published.mkdir()
    payload = os.urandom(300_000)
    (published / "w.pt").write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    cache = tmp_path / "cache"
    server = Server(published, delay=3.0)
    try:
        with pytest.raises(WeightsError, match="expected 0000.*nothing was kept"):
            fetch_weights(f"{server.url}/w.pt", "0" * 64, cache / "w.pt")
        assert list(cache.iterdir()) == []  # no file, no temporary file
        t = time.monotonic()
        with pytest.raises(WeightsError, match="could not download weights .*timed out"):
            fetch_weights(f"{server.url}/slow/w.pt", sha, cache / "w.pt", timeout=0.5)
        assert time.monotonic() - t < 2.5 and list(cache.iterdir()) == []
        with pytest.raises(WeightsError, match="could not download weights .*Not Found"):
            fetch_weights(f"{server.url}/missing.pt", sha, cache / "w.pt")
        assert list(cache.iterdir()) == []
        got = fetch_weights(f"{server.url}/w.pt", sha, cache / "w.pt")
        assert got == cache / "w.pt" and got.read_bytes() == payload
        assert [p.name for p in cache.iterdir()] == ["w.pt"]
        hits = len(server.hits)
        assert fetch_weights(f"{server.url}/w.pt", sha, cache / "w.pt") == got
        assert len(server.hits) == hits  # a verified cached file is used without a download
        got.write_bytes(payload[:-1])  # a damaged cached file is replaced
        assert fetch_weights(f"{server.url}/w.pt", sha, cache / "w.pt").read_bytes() == payload
        assert len(server.hits) == hits + 1
    finally:
        server.close()


# ---- generation ------------------------------------------------------------------------------
def _imports(folder: Path) -> set[str]:
    names = set()
    for f in folder.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_plugin_contents_and_zip(served):
    """Self-contained (PyPI requirements only, no import of ours), network.py is plain.py, the
    committed map holds only layers of the network, metadata.yaml passes Brain-Score's schema,
    the BibTeX parses, and the zip holds the plugin folder only."""
    import yaml
    from brainscore_core.metadata.contract import load as load_metadata
    from pybtex.database import parse_string

    from model_zoo import plain

    info, _ = served
    folder = Path(info["folder"])
    ident = info["identifier"]
    assert ident.startswith("nmnc_cnn-")  # <rule>_<arch>-<weights hash> for a checkpoint path
    init = (folder / "__init__.py").read_text()
    assert f"model_registry['{ident}'] = lambda: ModelCommitment(" in init
    reqs = (folder / "requirements.txt").read_text().split()
    assert [r.split(">")[0] for r in reqs] == ["torch", "numpy", "pillow"]
    assert not _imports(folder) & set(OURS)
    assert _imports(folder) <= PLUGIN_IMPORTS
    assert (folder / "network.py").read_bytes() == Path(plain.__file__).read_bytes()
    assert json.loads((folder / "committed_layers.json").read_text()) == {"V4": "conv3"}
    model_py = (folder / "model.py").read_text()
    doc = " ".join(model_py.split('"""')[1].split())
    assert info["sha256"] in model_py
    assert "V4 -> conv3 (chosen on Cowley2023.V4-pls)" in doc
    assert "Brain-Score selects the layer of V1, V2, IT itself" in doc
    assert plain.file_sha256(info["weights"]) == info["sha256"]
    text = (folder / "metadata.yaml").read_text()
    meta = load_metadata(text, "vision")["models"][ident]
    net, _ = plain.load_network(info["weights"])
    assert meta["model"]["parameter_count"] == sum(p.numel() for p in net.parameters())
    assert meta["model"]["input_resolution"] == {"channels": 3, "height": 32, "width": 32}
    assert meta["data"]["training_datasets"][0]["identifier"] == "cifar10"
    assert info["sha256"] in meta["provenance"]["checkpoint"]
    assert "learning rule 'nmnc'" in meta["training"]["process"]
    assert yaml.safe_load(text)["schema_version"] == "2.0"
    bib = import_plugin(folder).get_bibtex(ident)
    (entry,) = parse_string(bib, "bibtex").entries.values()
    assert [p.last_names for p in entry.persons["author"]] == [
        ["Kang"],
        ["Richards"],
        ["Sabatini"],
    ]
    assert entry.fields["eprint"] == "2601.02636"
    names = zipfile.ZipFile(info["zip"]).namelist()
    files = ["__init__.py", "model.py", "network.py", "pin.py", "test.py", "requirements.txt"]
    files += ["committed_layers.json", "metadata.yaml"]
    assert sorted(names) == sorted(f"{folder.name}/{f}" for f in files)  # no weights, no pins
    assert info["zip_bytes"] < 50 * 2**20
    pin = Path(info["pin_data"]) / PIN_NAME
    assert pin.parent.parent == folder.parent and (pin / "benchmark.json").exists()
    assert PIN_NAME in info["pins"] and 0 < info["pins"][PIN_NAME] < 1


def test_pin_data_is_a_user_defined_benchmark_of_the_session(served, data_root):
    """pin_data/<pin> is the session's images and single trials in the README's folder format."""
    import numpy as np

    from brain_benchmarks.benchmarks import load_benchmark

    info, _ = served
    folder = Path(info["pin_data"]) / PIN_NAME
    mine = load_benchmark(str(folder))
    (session,) = load_benchmark("Cowley2023.V4-pls", data_root, sessions=["210325"]).sessions
    assert (mine.id, mine.region, mine.kind) == (PIN_NAME, "V4", "neural")
    (copy,) = mine.sessions
    assert np.array_equal(copy["trials"], session["trials"], equal_nan=True)
    assert np.allclose(copy["responses"], session["responses"])
    for i in (0, 321, 639):
        a = np.asarray(copy["stimuli"].read(i))
        assert np.array_equal(a, np.asarray(session["stimuli"].read(i)))


def test_committed_regions_only_and_brainscore_selects_the_rest(served, env, zoo):
    """A partial map: committed regions fixed, Brain-Score's lazy RegionLayerMap (its own layer
    selection over the network's layers on its standard benchmarks) for the others; every region
    committed: a plain dict; none: ModelCommitment's own default."""
    from brainscore_vision.model_helpers.brain_transformation import (
        STANDARD_REGION_BENCHMARKS,
        RegionLayerMap,
    )

    from model_zoo import PluginConfig, write_plugin
    from nmnc.checkpoint import load_checkpoint

    info, _ = served
    model = import_plugin(Path(info["folder"]))
    os.environ["NMNC_PLUGIN_CACHE"] = str(env / "plugins" / "weights")
    try:
        rlm = model.region_layer_map(info["identifier"])
        assert isinstance(rlm, RegionLayerMap) and dict(rlm) == {"V4": "conv3"}
        assert rlm.layer_selection.layers == ["conv1", "conv2", "conv3", "conv4"]
        assert rlm.region_benchmarks is STANDARD_REGION_BENCHMARKS
        assert rlm["V4"] == "conv3"  # committed: no selection runs
        h = load_checkpoint(env / "zoo" / "nmnc_cnn").weights_hash
        every = {"V1": "conv1", "V2": "conv2", "V4": "conv3", "IT": "conv4"}
        out = env / "full"
        results = results_table(env / "full.csv", h, every)
        full = write_plugin(
            PluginConfig("nmnc_cnn", str(out), bundle_weights=True, results=results)
        )
        full_model = import_plugin(Path(full["folder"]))
        assert full_model.region_layer_map(full["identifier"]) == every
        assert type(full_model.region_layer_map(full["identifier"])) is dict
        none = write_plugin(PluginConfig("nmnc_cnn", str(env / "none"), bundle_weights=True))
        assert none["committed_layers"] == {}
        assert full["sha256"] == none["sha256"] == info["sha256"]  # same weights, same bytes
        none_model = import_plugin(Path(none["folder"]))
        assert none_model.region_layer_map(none["identifier"]) is None
        assert "no region is committed" in Path(none["folder"], "model.py").read_text()
    finally:
        os.environ.pop("NMNC_PLUGIN_CACHE", None)


def test_command_line_errors_are_one_line_before_any_work(env, zoo, capsys):
    from model_zoo.__main__ import main as zoo_main
    from model_zoo.plugin import main as plugin_main
    from nmnc.checkpoint import save_checkpoint

    out = env / "refused"
    run = str(env / "zoo" / "nmnc_cnn")
    not_ckpt = env / "notes.txt"
    not_ckpt.write_text("not a checkpoint\n")
    payload = torch.load(Path(run, "checkpoint.pt"), weights_only=True)
    del payload["model_state"]["conv2.0.weight"]
    save_checkpoint(env / "broken.pt", payload)
    cases = [
        (["nmnc_cnn", "--out", str(out)], "give --weights-url URL"),
        (["nmnc_cmn", "--out", str(out), "--bundle-weights"], "did you mean 'nmnc_cnn'"),
        ([str(not_ckpt), "--out", str(out), "--bundle-weights"], "not a readable checkpoint"),
        ([run, "--out", str(out), "--weights-url", "ftp://h/w.pt"], "is not an http(s) URL"),
        (
            [str(env / "broken.pt"), "--out", str(out), "--bundle-weights"],
            "do not load into the plugin's 'cnn'",
        ),
        ([run, "--out", str(out), "--bundle-weights", "--pin", "Cowley2023.V9-pls"], "V4-pls"),
        (
            [run, "--out", str(out), "--bundle-weights", "--pin", PIN],
            "scores region V4, which has no layer chosen on data",
        ),
        (
            [run, "--out", str(out), "--bundle-weights", "--pin", "MajajHong2015public.IT-pls"],
            "scores region IT",
        ),
    ]
    for argv in cases:
        for main, args in ((plugin_main, argv[0]), (zoo_main, ["plugin", *argv[0]])):
            t = time.time()
            assert run_cli(main, args) == 2, args
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and argv[1] in err[0], err
            assert "Traceback" not in err[0] and time.time() - t < 30
    assert not out.exists()
    with pytest.raises(SystemExit) as exit_:
        zoo_main(["plugin", "--help"])
    assert exit_.value.code == 0 and "--pin BENCHMARK" in capsys.readouterr().out
    assert run_cli(plugin_main, [run, "--bundle-weights", "--pin", PIN, "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["model"] == run and cfg["pins"] == [PIN] and not out.exists()
    with pytest.raises(NmncError, match="needs an output folder"):
        from model_zoo import PluginConfig, write_plugin

        write_plugin(PluginConfig(run, "", bundle_weights=True))


# ---- the plugin in a fresh environment -------------------------------------------------------
def clean_env(**extra) -> dict:
    """This environment without PYTHONPATH and nmnc's variables, plus ``extra``."""
    keep = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("NMNC")}
    return {**keep, "BS_INSTALL_DEPENDENCIES": "no", **extra}


def sh(cmd, cwd, env, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def fresh_venv(where: Path, layered: bool) -> Path:
    """A new virtual environment; ``layered``: this environment's site-packages added as a plain
    path (.pth line), so its packages import but its .pth files (the editable nmnc) do not run."""
    r = sh([sys.executable, "-m", "venv", where], where.parent, clean_env())
    assert r.returncode == 0, r.stderr
    python = where / "bin" / "python"
    if layered:
        site = sh(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            where,
            clean_env(),
        )
        (Path(site.stdout.strip()) / "nmnc_layer.pth").write_text(
            sysconfig.get_paths()["purelib"] + "\n"
        )
    return python


def run_plugin_tests(python: Path, folder: Path, cwd: Path, env: dict) -> str:
    r = sh([python, "-m", "pytest", "-rA", "-p", "no:cacheprovider", folder / "test.py"], cwd, env)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    return r.stdout


def test_fresh_venv_installs_loads_and_scores_the_plugin(served, tmp_path):
    """Done when: the plugin, installed into a fresh venv from its own requirements.txt with this
    repository not importable, loads through its registration line, downloads and checks its
    weights, and scores its pinned local benchmark as at generation; every requirement resolves
    on PyPI."""
    info, server = served
    folder = Path(info["folder"])
    python = fresh_venv(tmp_path / "venv", layered=True)
    env = clean_env(
        RESULTCACHING_HOME=str(tmp_path / "rc"), NMNC_PLUGIN_CACHE=str(tmp_path / "cache")
    )
    for module in OURS:
        r = sh([python, "-c", f"import {module}"], tmp_path, env)
        assert r.returncode != 0 and f"No module named '{module}'" in r.stderr
    r = sh([python, "-c", "import torch, brainscore_vision, pytest"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    r = sh([python, "-m", "pip", "install", "-r", "requirements.txt"], folder, env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for name in ("torch", "numpy", "pillow"):
        assert f"Requirement already satisfied: {name}" in r.stdout
    pypi = {k: v for k, v in env.items() if not k.startswith("PIP_")}
    pypi["PIP_CONFIG_FILE"] = os.devnull  # PyPI alone: no local mirrors or wheel folders
    dry = [python, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed"]
    dry += ["--index-url", "https://pypi.org/simple", "-r", "requirements.txt"]
    r = sh(dry, folder, pypi)
    assert r.returncode == 0, "requirements do not resolve on PyPI: " + r.stderr[-2000:]
    would = r.stdout.strip().splitlines()[-1]
    assert would.startswith("Would install") and all(
        f" {n}-" in would for n in ("torch", "numpy", "pillow")
    ), would
    hits = len(server.hits)
    out = run_plugin_tests(python, folder, tmp_path, env)
    assert "2 passed" in out and "skipped" not in out, out[-2000:]
    assert "PASSED" in out and "test_local_benchmark_score" in out
    cached = tmp_path / "cache" / f"{info['identifier']}.pt"
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == info["sha256"]
    assert len(server.hits) == hits + 1  # downloaded once from its URL, then checked
    elsewhere = tmp_path / "elsewhere" / folder.name  # the plugin without its pin data
    shutil.copytree(folder, elsewhere, ignore=shutil.ignore_patterns("__pycache__"))
    out = run_plugin_tests(python, elsewhere, tmp_path, env)
    assert "1 passed, 1 skipped" in out and "local pin data" in out, out[-2000:]


def _brainscore_copy(tmp: Path) -> Path:
    """A temporary brainscore_vision whose models/ folder we may add to (links to the installed
    files; nothing is written into site-packages)."""
    import brainscore_vision

    src = Path(brainscore_vision.__file__).parent
    dst = tmp / "site" / "brainscore_vision"
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.name == "models":
            (dst / "models").mkdir()
            for m in item.iterdir():
                (dst / "models" / m.name).symlink_to(m)
        elif item.name != "__pycache__":
            (dst / item.name).symlink_to(item)
    return dst


def test_plugin_tests_pass_inside_brainscore_models(served, tmp_path):
    """In Brain-Score's layout (brainscore_vision/models/<plugin>/) test.py loads the model with
    brainscore_vision.load_model and the pinned score holds."""
    info, _ = served
    copy = _brainscore_copy(tmp_path)
    shutil.copytree(info["folder"], copy / "models" / Path(info["folder"]).name)
    env = clean_env(
        PYTHONPATH=str(copy.parent),
        RESULTCACHING_HOME=str(tmp_path / "rc"),
        NMNC_PLUGIN_CACHE=str(tmp_path / "cache"),
        NMNC_PIN_DATA=info["pin_data"],
    )
    plugin = copy / "models" / Path(info["folder"]).name
    out = run_plugin_tests(Path(sys.executable), plugin, tmp_path, env)
    assert "2 passed" in out and "skipped" not in out, out[-2000:]


@pytest.mark.slow
def test_full_install_in_a_fresh_venv(served, tmp_path):
    """The same with a genuine install: brainscore_vision, pytest and the plugin's requirements
    from the package index into a fresh venv (several GB; minutes)."""
    info, _ = served
    folder = Path(info["folder"])
    python = fresh_venv(tmp_path / "venv", layered=False)
    env = clean_env(
        RESULTCACHING_HOME=str(tmp_path / "rc"), NMNC_PLUGIN_CACHE=str(tmp_path / "cache")
    )
    r = sh([python, "-m", "pip", "install", "brainscore_vision", "pytest"], tmp_path, env, 3600)
    assert r.returncode == 0, r.stderr[-3000:]
    r = sh([python, "-m", "pip", "install", "-r", "requirements.txt"], folder, env, 3600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sh([python, "-c", "import nmnc"], tmp_path, env).returncode != 0
    out = run_plugin_tests(python, folder, tmp_path, env)
    assert "2 passed" in out and "skipped" not in out, out[-2000:]
