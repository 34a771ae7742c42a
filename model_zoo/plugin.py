"""Write a Brain-Score plugin for a zoo model or a checkpoint:
``python -m model_zoo.plugin NAME|CHECKPOINT --out DIR``.

``<out>/<plugin>/`` is self-contained: it depends only on packages on PyPI (``requirements.txt``:
torch, numpy, pillow; brainscore_vision comes with Brain-Score's harness) and holds
``__init__.py`` (the literal ``model_registry['<identifier>'] = lambda: ModelCommitment(...)``
line Brain-Score's loader searches for), ``network.py`` (a copy of ``model_zoo/plain.py``: the
architecture in plain torch with nmnc's layer names, the preprocessing of our own extraction, the
weights download), ``model.py`` (``get_model``, ``get_layers``, ``region_layer_map``,
``get_bibtex``), ``committed_layers.json`` (regions whose layer was chosen on data; Brain-Score
selects the others itself), ``pin.py`` and ``test.py`` (scores pinned at generation),
``metadata.yaml`` and, with ``--bundle-weights``, ``weights.pt``. Beside it: ``<plugin>.zip`` to
upload, ``weights/<identifier>.pt`` to publish at ``--weights-url`` and, for local pins,
``pin_data/<pin>/`` (never in the zip). The text of the generated files (``model.py``,
``__init__.py``, ``pin.py``, ``test.py``, ``requirements.txt``, the BibTeX) lives in
``model_zoo/templates.py``; this module fills it in and writes the plugin.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from nmnc.checkpoint import Checkpoint, load_checkpoint
from nmnc.cli import entry, out_dir, print_config, require_out, results_file
from nmnc.cli import parser as make_parser
from nmnc.errors import DataError, NmncError, UnknownNameError
from nmnc.io import atomic_path, atomic_write_bytes, replace_folder, writing

from . import plain
from .registry import ZOO, variant_id, weights
from .templates import ARXIV, BIBTEX, INIT_PY, MODEL_DOC, MODEL_PY, PIN_PY, REQUIREMENTS, test_py

MAX_ZIP = 50 * 2**20  # Brain-Score's submission limit
REGIONS = ("V1", "V2", "V4", "IT")  # Brain-Score's region commitments
MAIN_RESULTS = "reports/default"  # the main job's results folder
OUT_WHAT = "the plugin folder, its zip, the weights file and local pin data"
PLUGIN_OUT = (
    "folder for <plugin>/, <plugin>.zip, weights/<identifier>.pt and pin_data/ (local pins)"
)
PIN_SPLITS = 3  # cross-validation folds of a local pin (cheap; fixed random_state 0)


# ---- committed layers ------------------------------------------------------------------------
SPECIES = {"monkey": "macaque", "macaque": "macaque", "human": "human"}  # id prefixes


def region_species(benchmark: str) -> tuple[str, str]:
    """Region and species named in a benchmark id, for tables written before those columns:
    'Cowley2023.V4-pls' -> ('V4', ''), 'Kriegeskorte2008.monkeyIT-rsa' -> ('IT', 'macaque'),
    'Kriegeskorte2008.humanIT-rsa' -> ('IT', 'human')."""
    part = str(benchmark).split(".", 1)[-1]
    part = part.rsplit("-", 1)[0] if "-" in part else part
    for prefix, species in SPECIES.items():
        if part.startswith(prefix) and len(part) > len(prefix):
            return part[len(prefix) :], species
    return part, ""


def committed_rows(results: str | None, checkpoint_hash: str, layers=None) -> dict:
    """Region -> {'layer', 'benchmark'} from the committed rows of the results table (its CSV, or
    the folder holding results.csv) for these weights: macaque rows first, then rows of unknown
    species, then the others; the newest benchmark version, then the last row (see
    ``brain_benchmarks.results.commitments``). With ``layers``, rows whose layer is not one of
    them are ignored; rows of public Brain-Score benchmarks never count. Tables without region
    and species columns get them from the benchmark id."""
    if not results:
        return {}
    path = Path(results_file(results))
    if not path.is_file():
        raise NmncError(
            f"no results table at {path}; give --results the folder or CSV that "
            "brain_benchmarks.score wrote, or leave it out"
        )
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise NmncError(
            f"{path} is not a readable results table ({str(err).splitlines()[0]})"
        ) from None
    missing = [c for c in ("checkpoint_hash", "benchmark", "layer", "committed") if c not in df]
    if missing:
        raise NmncError(
            f"{path} lacks the columns {', '.join(missing)}; "
            "give a results table written by brain_benchmarks.score"
        )
    named = df.benchmark.map(region_species)
    for i, col in enumerate(("region", "species")):
        known = named.map(lambda rs, i=i: rs[i])
        if col not in df:
            df[col] = known
        else:
            given = df[col].fillna("").astype(str)
            df[col] = given.where(given != "", known)
    from brain_benchmarks.results import commitments

    if layers is None:
        layers = set(df.layer.astype(str))
    chosen = commitments(df, checkpoint_hash, layers)
    return {region: chosen[region] for region in REGIONS if region in chosen}


def committed_layers(results: str | None, checkpoint_hash: str, layers=None) -> dict:
    """Region -> layer of :func:`committed_rows`."""
    return {r: row["layer"] for r, row in committed_rows(results, checkpoint_hash, layers).items()}


# ---- the model -------------------------------------------------------------------------------
def resolve(model: str) -> tuple[Checkpoint, str, str]:
    """The checkpoint of a zoo name or a checkpoint path (file or run folder), its identifier
    (``<name>-<weights hash>``; ``<rule>_<arch>-<hash>`` for a path) and a label for people."""
    if model in ZOO:
        ckpt = load_checkpoint(weights(model))
        return ckpt, variant_id(model, ckpt.weights_hash), f"zoo model {model}"
    if Path(model).exists():
        ckpt = load_checkpoint(model)
        ckpt.require_images("a Brain-Score plugin (Brain-Score's vision benchmarks show images)")
        ident = variant_id(f"{ckpt.rule}_{ckpt.arch}", ckpt.weights_hash)
        return ckpt, ident, f"checkpoint {Path(model).name}"
    raise UnknownNameError(
        "zoo model", model, ZOO.names(), "or give a checkpoint (file or run folder)"
    )


def plain_network(ckpt: Checkpoint) -> plain.StagedNetwork:
    """The plugin's plain-torch network with the checkpoint's weights (loaded strictly)."""
    if ckpt.arch not in plain.ARCHITECTURES:
        raise NmncError(
            f"architecture '{ckpt.arch}' has no plain-torch twin in model_zoo/plain.py (it has "
            f"{', '.join(plain.ARCHITECTURES)}); add it there to write its plugin"
        )
    try:
        net = plain.build(ckpt.arch, ckpt.model_settings)
        net.load_state_dict(ckpt.model_state, strict=True)
    except (ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0][:160]
        raise NmncError(
            f"{ckpt.path}: its weights do not load into the plugin's '{ckpt.arch}' ({first}); "
            "give a checkpoint written by this nmnc, or update model_zoo/plain.py to match"
        ) from None
    return net.eval()


def _optional(ckpt: Checkpoint, attr: str):
    """A checkpoint field a slim checkpoint lacks (dataset, step), or None."""
    try:
        return getattr(ckpt, attr)
    except KeyError:
        return None


def metadata(ckpt: Checkpoint, ident: str, label: str, net, sha: str, url: str | None) -> dict:
    """metadata.yaml as Brain-Score's schema 2.0 has it (brainscore_core.metadata.contract)."""
    dataset = _optional(ckpt, "dataset") or "unknown"
    settings = ", ".join(f"{k}={v}" for k, v in sorted(ckpt.rule_settings.items()))
    arch_settings = ", ".join(f"{k}={v}" for k, v in sorted(ckpt.model_settings.items()))
    provenance = {
        "weights_provider": f"nmnc model_zoo ({label})",
        "checkpoint": f"slim nmnc checkpoint {ident}.pt, SHA-256 {sha}",
    }
    if url:
        provenance["source_url"] = url
    git = ckpt.provenance.get("git_sha")
    entry = {
        "sources": {
            "paper": {
                "kind": "paper",
                "url": f"https://arxiv.org/abs/{ARXIV}",
                "citation": "Kang, Richards and Sabatini (2026), Credit Assignment via Neural "
                "Manifold Noise Correlation",
            }
        },
        "model": {
            "display_name": ident,
            "version": ckpt.weights_hash,
            "architecture": {
                "family": "convolutional_neural_network",
                "description": f"nmnc '{ckpt.arch}' ({arch_settings})",
            },
            "parameter_count": sum(p.numel() for p in net.parameters()),
            "parameter_count_exact": True,
            "trainable_layers": f"{len(net.stage_names)} weight layers: "
            + ", ".join(net.stage_names),
            "recurrent": False,
            "input_resolution": {
                "channels": 3,
                "height": ckpt.input_size,
                "width": ckpt.input_size,
            },
            "supervision": {
                "type": "supervised",
                "description": f"{dataset} labels, credit assigned by the learning rule "
                f"'{ckpt.rule}'",
            },
        },
        "training": {
            "process": f"learning rule '{ckpt.rule}'"
            + (f" ({settings})" if settings else "")
            + (f", {ckpt.step} steps" if _optional(ckpt, "step") is not None else "")
            + (f", nmnc git {git}" if git else ""),
            "objective": f"{len(ckpt.classes)}-class image classification",
            "preprocessing": f"bicubic resize to {ckpt.input_size}x{ckpt.input_size}, "
            f"normalised with mean {list(ckpt.mean)} and std {list(ckpt.std)}",
        },
        "data": {
            "summary": dataset,
            "training_datasets": [{"identifier": dataset, "name": dataset, "role": "training"}],
        },
        "io": {
            "modality": "image",
            "interface": "image, classification_logits",
            "input_format": "image",
            "output_format": "classification_logits",
        },
        "provenance": provenance,
    }
    return {"schema_version": "2.0", "domain": "vision", "models": {ident: entry}}


# ---- pins ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pin:
    """A benchmark whose score test.py pins: a public Brain-Score id, or a local neural benchmark
    (a built-in id of ours with an optional session, or a benchmark folder)."""

    spec: str  # as given
    source: str  # public id, built-in id, or folder path
    region: str
    public: bool
    session: str = ""  # a built-in local benchmark's session ("": its smallest)


def parse_pin(spec: str) -> Pin:
    """``MajajHong2015public.IT-pls``, ``Cowley2023.V4-pls[:SESSION]`` or a benchmark folder."""
    # brain_benchmarks owns the benchmark registries; a pin reads them (lazily), as data
    from brain_benchmarks.benchmarks import BENCHMARKS, PUBLIC_INFO, from_folder_spec

    if spec in PUBLIC_INFO:
        return Pin(spec, spec, PUBLIC_INFO[spec].region, True)
    if Path(spec).is_dir():
        return Pin(spec, spec, from_folder_spec(spec).region, False)
    bench, _, session = spec.partition(":")
    if bench in BENCHMARKS:
        return Pin(spec, bench, BENCHMARKS.get(bench).factory.info.region, False, session)
    raise UnknownNameError(
        "benchmark to pin",
        bench,
        [*PUBLIC_INFO, *BENCHMARKS.names()],
        "or give a benchmark folder; a built-in id takes one session as ID:SESSION",
    )


def check_pin(pin: Pin, committed: dict, model: str) -> None:
    """A pin's region must be committed (Brain-Score's own selection needs ImageNet and its
    public data, so it cannot be pinned here), and a public pin's data must be present."""
    if pin.region != "behavior" and pin.region not in committed:
        raise NmncError(
            f"--pin {pin.spec} scores region {pin.region}, which has no layer chosen on data for "
            "these weights, so Brain-Score would select one itself (on its public data and "
            "ImageNet), which cannot be pinned here; score first with 'python -m "
            f"brain_benchmarks.score --model {model} --benchmark {pin.source} --out DIR' and give "
            "--results DIR"
        )
    if pin.public:
        from brain_benchmarks.brainscore_adapter import brainio_home, missing_public_files

        missing = missing_public_files(pin.source)
        if missing:
            raise DataError(
                f"--pin {pin.spec} is scored now and needs Brain-Score's public data files, not "
                f"found here: {', '.join(missing)}; put them there (BRAINIO_HOME="
                f"{brainio_home()}) or pin a local benchmark (e.g. Cowley2023.V4-pls:210325)"
            )


def write_pin_data(pin: Pin, folder: Path, data_root: str | None) -> str:
    """A local pin's data (one session: the given one, else the smallest) written under
    ``folder`` in the user-defined benchmark format; returns the name of its folder there."""
    import numpy as np

    from brain_benchmarks.benchmarks import load_benchmark

    options = {"sessions": [pin.session]} if pin.session else {}
    b = load_benchmark(pin.source, data_root, **options)
    if getattr(b, "kind", "") != "neural":
        raise NmncError(
            f"--pin {pin.spec} is a {getattr(b, 'kind', '?')} benchmark; a pin takes a neural "
            "(PLS) benchmark, e.g. Cowley2023.V4-pls:210325"
        )
    session = min(b.sessions, key=lambda s: len(s["stimuli"]))  # one session keeps a pin cheap
    folder_pin = Path(pin.source).is_dir()
    name = re.sub(r"[^0-9A-Za-z._-]", "_", b.id if folder_pin else f"{b.id}.{session['session']}")
    stimuli = session["stimuli"]
    trials = session.get("trials")  # neurons x images x repeats, where single trials exist
    data = trials if trials is not None else np.asarray(session["responses"]).T
    files = [f"{i:05d}_{Path(s).stem}.png" for i, s in enumerate(stimuli.ids)]
    meta = {
        "name": name,
        "region": b.region,
        "species": b.species,
        "kind": "neural",
        "version": int(b.version),
        "description": f"pinned by nmnc plugins: {b.id}, session {session['session']}",
        "stimuli": files,
        "splits": PIN_SPLITS,
    }
    dest = folder / name
    work = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    shutil.rmtree(work, ignore_errors=True)
    (work / "stimuli").mkdir(parents=True)
    for i, f in enumerate(files):
        stimuli.read(i).save(work / "stimuli" / f, format="PNG")
    np.save(work / "responses.npy", np.asarray(data, dtype=np.float64))
    (work / "benchmark.json").write_text(json.dumps(meta, indent=1))
    replace_folder(work, dest)
    return name


def score_pins(folder: Path, ident: str, pins: list[tuple[Pin, str]], pin_root: Path, cache: Path):
    """Pinned values: the plugin in ``folder`` imported in this process (its registration line
    runs), its ModelCommitment scored by its own pin.py (local) or by brainscore_vision (public)."""
    os.environ.setdefault("BS_INSTALL_DEPENDENCIES", "no")
    os.environ.setdefault("RESULTCACHING_DISABLE", "1")  # see brain_benchmarks.brainscore_adapter
    package = f"_nmnc_plugin_{folder.name.replace('.', '_')}"
    old_cache = os.environ.get("NMNC_PLUGIN_CACHE")
    os.environ["NMNC_PLUGIN_CACHE"] = str(cache)  # the weights just written: no download
    try:
        spec = importlib.util.spec_from_file_location(
            package, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        spec.loader.exec_module(module)
        import brainscore_vision

        pin_module = importlib.import_module(f"{package}.pin")
        commitment = brainscore_vision.model_registry[ident]()
        values = []
        for pin, name in pins:
            if pin.public:
                score = brainscore_vision.load_benchmark(pin.source)(commitment)
            else:
                score = pin_module.benchmark(pin_root / name)(commitment)
            values.append(round(float(score), 6))
        return values
    finally:
        for key in [k for k in sys.modules if k == package or k.startswith(package + ".")]:
            del sys.modules[key]
        if old_cache is None:
            os.environ.pop("NMNC_PLUGIN_CACHE", None)
        else:
            os.environ["NMNC_PLUGIN_CACHE"] = old_cache
        shutil.rmtree(folder / "__pycache__", ignore_errors=True)


# ---- the plugin ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PluginConfig:
    """Which model's plugin to write, where, where its weights will be published, and which
    scores its test pins."""

    model: str  # zoo name, or checkpoint path (file or run folder)
    out: str  # folder for the plugin, its zip, the weights file and local pin data
    weights_url: str | None = None  # where weights/<identifier>.pt will be published
    results: str | None = None  # a results CSV or its folder with committed layers; None: none
    bundle_weights: bool = False  # weights inside the plugin (small models; 50 MB zip limit)
    pins: tuple[str, ...] = ()  # public Brain-Score ids, ID[:SESSION] of ours, benchmark folders
    data_root: str | None = None  # where local pins' data are (None: $NMNC_DATA_ROOT)


def check_config(cfg: PluginConfig) -> None:
    """The cheap checks, before any work: the model resolves to a name or a path, the output is
    a folder, the weights have a source and the pins name benchmarks."""
    if cfg.model not in ZOO and not Path(cfg.model).exists():
        resolve(cfg.model)  # an unknown name: the error lists the zoo names
    if cfg.out:
        out_dir(cfg.out, OUT_WHAT)
    if not cfg.weights_url and not cfg.bundle_weights:
        raise NmncError(
            "the plugin needs its weights: give --weights-url URL (where you will publish "
            "<out>/weights/<identifier>.pt) or --bundle-weights (inside the plugin, small models)"
        )
    if cfg.weights_url and not re.match(r"^https?://", cfg.weights_url):
        raise NmncError(
            f"--weights-url {cfg.weights_url} is not an http(s) URL; give the address where "
            "the weights file will be downloadable, e.g. https://host/path/<identifier>.pt"
        )
    for spec in cfg.pins:
        parse_pin(spec)


def write_plugin(cfg: PluginConfig) -> dict:
    """Write the Brain-Score plugin folder, its zip, the slim weights file and the local pins'
    data; score the pins on the written plugin; returns what was written."""
    if not cfg.out:
        raise NmncError(
            f"the plugin needs an output folder: PluginConfig(out=DIR), or --out DIR ({OUT_WHAT})"
        )
    check_config(cfg)
    ckpt, ident, label = resolve(cfg.model)
    net = plain_network(ckpt)
    layers = list(net.hidden_layers)
    rows = committed_rows(cfg.results, ckpt.weights_hash, layers)
    committed = {region: row["layer"] for region, row in rows.items()}
    pins = [parse_pin(spec) for spec in cfg.pins]
    for pin in pins:
        check_pin(pin, committed, cfg.model)
    with writing(cfg.out, named_by_error=True):
        return _write_files(cfg, ckpt, ident, label, net, rows, committed, pins)


def _write_files(cfg: PluginConfig, ckpt, ident, label, net, rows, committed, pins) -> dict:
    out = Path(cfg.out)
    pin_root = out / "pin_data"  # local pins' data first: a bad session fails before any file
    named = [
        (p, p.source if p.public else write_pin_data(p, pin_root, cfg.data_root)) for p in pins
    ]
    folder = out / re.sub(r"[^0-9a-zA-Z_]", "_", ident)
    wfile = out / "weights" / f"{ident}.pt"
    buf = io.BytesIO()  # saved in memory: torch names the archive after a file, not a buffer
    torch.save(ckpt.slim(), buf)
    atomic_write_bytes(wfile, buf.getvalue())  # the same weights give the same bytes and SHA-256
    sha = plain.file_sha256(wfile)
    if cfg.bundle_weights and wfile.stat().st_size > MAX_ZIP:
        raise NmncError(
            f"the weights ({wfile.stat().st_size / 2**20:.1f} MB) do not fit Brain-Score's 50 MB "
            f"zip limit; leave out --bundle-weights and publish {wfile} at --weights-url"
        )
    work = folder.with_name(f".{folder.name}.{os.getpid()}.partial")  # whole, then swapped in
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copy(Path(plain.__file__), work / "network.py")
    for name, text in plugin_files(cfg, ckpt, ident, label, net, sha, rows).items():
        (work / name).write_text(text)
    if cfg.bundle_weights:
        shutil.copy(wfile, work / "weights.pt")
    values = score_pins(work, ident, named, pin_root, wfile.parent) if named else []
    scored = [(p.public, name, v) for (p, name), v in zip(named, values)]
    (work / "test.py").write_text(test_py(ident, committed, scored))
    zpath = out / f"{folder.name}.zip"
    with atomic_path(zpath) as tmp:  # checked before anything of the old plugin is replaced
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(work.rglob("*")):
                if f.is_file() and "__pycache__" not in f.parts:  # the plugin folder only
                    zf.write(f, Path(folder.name) / f.relative_to(work))
        if tmp.stat().st_size > MAX_ZIP:
            shutil.rmtree(work, ignore_errors=True)
            raise NmncError(
                f"the plugin's zip is {tmp.stat().st_size / 2**20:.1f} MB, over Brain-Score's "
                f"50 MB limit; leave out --bundle-weights and publish {wfile} at --weights-url"
            )
        replace_folder(work, folder)
    return {
        "identifier": ident,
        "folder": str(folder),
        "zip": str(zpath),
        "weights": str(wfile),
        "sha256": sha,
        "committed_layers": committed,
        "pins": {name: v for _, name, v in scored},
        "pin_data": str(pin_root) if any(not public for public, _, _ in scored) else None,
        "zip_bytes": zpath.stat().st_size,
    }


def plugin_files(cfg, ckpt: Checkpoint, ident: str, label: str, net, sha: str, rows) -> dict:
    """The plugin's text files but test.py (which needs the pinned scores): name -> text."""
    import textwrap

    import yaml  # brainscore_core's dependency

    fields = dict(
        identifier=ident,
        label=label,
        arch=ckpt.arch,
        rule=ckpt.rule,
        dataset=_optional(ckpt, "dataset") or "an unrecorded dataset",
        input_size=ckpt.input_size,
        mean=tuple(ckpt.mean),
        std=tuple(ckpt.std),
        weights_note="bundled (weights.pt)"
        if cfg.bundle_weights
        else f"downloaded from {cfg.weights_url}",
        map_note=map_note(rows, cfg.results),
    )
    doc = MODEL_DOC.format(**fields).split("\n\n")
    doc = "\n\n".join(textwrap.fill(" ".join(par.split()), 96) for par in doc)
    committed = {region: row["layer"] for region, row in rows.items()}
    model_py = MODEL_PY.format(
        doc=doc,
        identifier=ident,
        url=cfg.weights_url,
        sha256=sha,
        layers=list(net.hidden_layers),
        input_size=ckpt.input_size,
        mean=tuple(ckpt.mean),
        std=tuple(ckpt.std),
        bibtex=BIBTEX,
    )
    meta = metadata(ckpt, ident, label, net, sha, cfg.weights_url)
    return {
        "model.py": model_py,
        "__init__.py": INIT_PY.format(identifier=ident),
        "pin.py": PIN_PY.format(splits=PIN_SPLITS),
        "requirements.txt": REQUIREMENTS,
        "committed_layers.json": json.dumps(committed, indent=1),
        "metadata.yaml": yaml.safe_dump(meta, sort_keys=False),
    }


def map_note(rows: dict, results: str | None) -> str:
    """What model.py's docstring says of its region-to-layer map."""
    done = [f"{r} -> {row['layer']} (chosen on {row['benchmark']})" for r, row in rows.items()]
    rest = [r for r in REGIONS if r not in rows]
    table = "/".join(Path(results_file(results)).parts[-2:]) if results else ""
    note = (
        f"committed from the results table {table}: {'; '.join(done)}."
        if done
        else "no region is committed (no results table with committed rows for these weights)."
    )
    if rest:
        note += f" Brain-Score selects the layer of {', '.join(rest)} itself."
    return note


# ---- the command -----------------------------------------------------------------------------
def add_arguments(p) -> None:
    """The flags of plugin generation."""
    p.add_argument("model", help="zoo name, or checkpoint path (file or run folder)")
    p.add_argument("--weights-url", help="where weights/<identifier>.pt will be published")
    p.add_argument(
        "--bundle-weights",
        action="store_true",
        help="put the weights inside the plugin (small models: 50 MB zip limit)",
    )
    p.add_argument(
        "--results",
        metavar="CSV|DIR",
        help="results table with committed layers, or the folder holding its results.csv "
        f"(default {MAIN_RESULTS} when it exists)",
    )
    p.add_argument(
        "--pin",
        dest="pins",
        action="append",
        default=[],
        metavar="BENCHMARK",
        help="pin the score on a benchmark in test.py (repeatable): a public Brain-Score id "
        "(its data in $BRAINIO_HOME), ID[:SESSION] of ours (e.g. Cowley2023.V4-pls:210325; "
        "default: its smallest session) or a benchmark folder; local data go to <out>/pin_data",
    )


def run(args) -> int:
    """Write a plugin from parsed flags (shared by ``python -m model_zoo plugin`` and
    ``model_zoo.plugin``)."""
    results = args.results or (MAIN_RESULTS if Path(MAIN_RESULTS, "results.csv").exists() else None)
    cfg = PluginConfig(
        args.model,
        args.out or "",
        args.weights_url,
        results,
        args.bundle_weights,
        tuple(args.pins),
        args.data_root,
    )
    check_config(cfg)  # before any work: an unknown name, an existing file as --out, ...
    if args.print_config:
        return print_config(cfg)
    require_out(args, OUT_WHAT)
    print(json.dumps(write_plugin(cfg), indent=1))
    if results and not args.results:
        print(
            f"committed layers from {results} (the main job's table; --results to choose)",
            file=sys.stderr,
        )
    if not cfg.pins:
        print(
            "note: no --pin given, so test.py pins no score and Brain-Score's tests will check "
            "only that the model loads; give --pin (a public id, or Cowley2023.V4-pls:210325)",
            file=sys.stderr,
        )
    return 0


def main(argv=None) -> int:
    """``python -m model_zoo.plugin NAME|CHECKPOINT --out DIR``: write a Brain-Score plugin."""
    p = make_parser(
        "python -m model_zoo.plugin",
        __doc__.split("\n\n")[0],
        out=PLUGIN_OUT,
    )
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    entry(main, "model_zoo.plugin")
