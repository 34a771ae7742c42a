"""Loader benchmark: how fast an image folder becomes training batches, beside how fast BP on
resnet18 consumes them.

    python scripts/loader_bench.py [--data-root DIR] [--set folder=DIR] [--set make_folder=200]
        [--set workers=1,2,4] [--set steps=2] [--out DIR] [--print-config]

On the ImageFolder ``folder`` (default <data root>/imagenet; its train/ is read) it measures:
JPEG decoding on one core (PIL and torchvision, each alone and with a random resized crop to 224;
torchvision with the crop is what a loader worker does), the training loader's images/s at
``batch_size`` for each worker count (decode, crop, flip, normalise, on the device; worker
start-up included), BP's images/s on ``model`` at ``batch_size`` (forward, backward and SGD on
random images; bfloat16 autocast and channels-last on CUDA; on a CPU one step of batch 256 takes
a minute or two and about 7 GB) and, with CUDA, batched GPU decoding (decode_jpeg on
device='cuda'). ``make_folder=N`` first writes about N generated JPEGs of ``make_size`` pixels to
train/ and as many to val/, in ``folder`` (a new or empty one) or in a temporary folder when
``folder`` is not set. Batches draw images with replacement, so a folder smaller than a batch
serves. Prints a table; with ``--out DIR`` the rows are also written to DIR/loader_bench.json.
"""

import io
import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from tabulate import tabulate

from nmnc.cli import entry, print_config, script_settings
from nmnc.data import data_root
from nmnc.data.folder import AUGMENT, FolderSplit, crop_box
from nmnc.data.imagenet import MEAN, STD
from nmnc.data.synthetic import make_image_folder
from nmnc.engine.noise import example_seed
from nmnc.errors import NmncError
from nmnc.io import atomic_write_text
from nmnc.models import build_model
from nmnc.rules import build_rule
from nmnc.training.trainer import pick_device

OUT_FILE = "loader_bench.json"
SIZE = 224  # pixels of the network input


@dataclass(frozen=True)
class LoaderBench:
    """Settings of the loader benchmark (``--set KEY=VALUE``)."""

    folder: str | None = None  # ImageFolder with train/; default <data root>/imagenet
    make_folder: int = 0  # first write about this many generated JPEGs (0: use what is there)
    make_classes: int = 4  # classes of the generated folder
    make_size: tuple[int, ...] = (500, 375)  # width, height of the generated JPEGs (pixels)
    decode_images: int = 100  # images decoded per one-core measurement
    batch_size: int = 256  # images per batch, loader and BP
    loader_batches: int = 2  # batches per worker, for each worker count
    workers: tuple[int, ...] = ()  # loader worker counts; empty: 1, 2, 4, ... up to the cores
    model: str = "resnet18"
    width: float = 1.0  # the model's width multiplier
    steps: int | None = None  # timed BP steps (default: 20 on CUDA, 1 on a CPU)
    warmup: int | None = None  # untimed BP steps before them (default: 5 on CUDA, 0 on a CPU)
    device: str = "auto"  # 'auto', 'cpu', 'cuda', 'cuda:N'
    gpu_decode_images: int = 256  # images per batched GPU decode (CUDA only)
    data_root: str | None = None  # --data-root
    out: str | None = None  # --out: folder for loader_bench.json


def check(cfg: LoaderBench) -> None:
    """One-line errors for settings that cannot be measured."""
    at_least_1 = ("decode_images", "batch_size", "loader_batches", "steps", "gpu_decode_images")
    for key in (*at_least_1, "make_classes"):
        if getattr(cfg, key) is not None and getattr(cfg, key) < 1:
            raise NmncError(f"{key} must be at least 1, got {getattr(cfg, key)}")
    for key in ("warmup", "make_folder"):
        if getattr(cfg, key) is not None and getattr(cfg, key) < 0:
            raise NmncError(f"{key} must be 0 or more, got {getattr(cfg, key)}")
    if any(w < 1 for w in cfg.workers):
        raise NmncError(f"workers must be whole numbers from 1, got {list(cfg.workers)}")
    if len(cfg.make_size) != 2 or min(cfg.make_size) < 1:
        raise NmncError(f"make_size takes WIDTH,HEIGHT in pixels, got {list(cfg.make_size)}")
    if cfg.width <= 0:
        raise NmncError(f"width must be positive, got {cfg.width}")


def worker_counts(cfg: LoaderBench) -> list[int]:
    """The worker counts to measure: as set, or powers of two up to the cores, and the cores."""
    if cfg.workers:
        return list(cfg.workers)
    cores = os.cpu_count() or 1
    return sorted({2**i for i in range(int(math.log2(cores)) + 1)} | {cores})


def timed(fn, n: int) -> float:
    """Calls per second of ``fn(i)`` for i in range(n), after one untimed call."""
    fn(0)
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t)


def decode_rows(split: FolderSplit, n: int) -> list[dict]:
    """Images/s of JPEG decoding on one core: PIL and torchvision, alone (from bytes in memory)
    and with a random resized crop to 224 (from the file, as a loader worker reads it)."""
    from PIL import Image
    from torchvision.io import decode_jpeg

    paths = [os.fsdecode(p) for p in split.examples.paths[:n]]
    blobs = [Path(p).read_bytes() for p in paths]
    raw = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]

    def pil(i):
        with Image.open(io.BytesIO(blobs[i % len(blobs)])) as im:
            return im.convert("RGB")

    def pil_crop(i):
        im = pil(i)
        box = crop_box(*im.size, torch.Generator().manual_seed(example_seed(0, 0, i, AUGMENT)))
        im.resize((SIZE, SIZE), Image.BILINEAR, box=box)

    def worker(i):
        split.examples[(i % len(blobs), example_seed(0, 0, i, AUGMENT))]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cases = [
            ("decode, PIL", pil),
            ("decode + resized crop, PIL", pil_crop),
            ("decode, torchvision decode_jpeg", lambda i: decode_jpeg(raw[i % len(raw)])),
            ("decode + resized crop, torchvision (the loader's worker)", worker),
        ]
        return [
            {"what": what, "device": "cpu", "workers": 1, "images_per_s": timed(fn, n)}
            for what, fn in cases
        ]
    finally:
        torch.set_num_threads(threads)


def loader_row(split: FolderSplit, cfg: LoaderBench, workers: int, device) -> dict:
    """Images/s of the training loader with ``workers`` processes, worker start-up included."""
    g = torch.Generator().manual_seed(0)
    n = cfg.loader_batches * workers
    plan = [(s, torch.randint(0, len(split), (cfg.batch_size,), generator=g)) for s in range(n)]
    t = time.perf_counter()
    for x, _ in split.loader(plan, True, 0, device, num_workers=workers):
        pass
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = n * cfg.batch_size / (time.perf_counter() - t)
    what = f"training loader, batch {cfg.batch_size} (crop, flip, normalise)"
    return {"what": what, "device": str(device), "workers": workers, "images_per_s": rate}


def bp_row(cfg: LoaderBench, device) -> dict:
    """Images/s of BP steps (forward, backward, SGD) on random images."""
    from contextlib import nullcontext

    torch.manual_seed(0)
    cuda = device.type == "cuda"
    layout = torch.channels_last if cuda else torch.contiguous_format
    model = build_model(cfg.model, width=cfg.width).to(device, memory_format=layout).train()
    if model.input_size != SIZE:
        raise NmncError(f"model {cfg.model} takes {model.input_size} px images, not {SIZE}")
    rule = build_rule("bp", model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    shape = (cfg.batch_size, 3, SIZE, SIZE)
    x = torch.randn(shape, device=device).contiguous(memory_format=layout)
    y = torch.randint(0, model.settings.num_classes, (cfg.batch_size,), device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
    steps = cfg.steps or (20 if cuda else 1)
    warmup = (5 if cuda else 0) if cfg.warmup is None else cfg.warmup

    def step(_):
        opt.zero_grad(set_to_none=True)
        with autocast:
            rule.step(x, y, None)
        opt.step()

    for i in range(warmup):
        step(i)
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    if cuda:
        torch.cuda.synchronize()
    rate = steps * cfg.batch_size / (time.perf_counter() - t)
    what = f"BP on {cfg.model} (width {cfg.width:g}), batch {cfg.batch_size}, {steps} steps"
    return {"what": what, "device": str(device), "workers": None, "images_per_s": rate}


def gpu_decode_row(split: FolderSplit, n: int, device) -> dict:
    """Images/s of batched JPEG decoding on the GPU (nvJPEG), from bytes in memory."""
    from torchvision.io import decode_jpeg

    paths = split.examples.paths
    raw = [
        torch.frombuffer(
            bytearray(Path(os.fsdecode(paths[i % len(paths)])).read_bytes()), dtype=torch.uint8
        )
        for i in range(n)
    ]
    decode_jpeg(raw, device=device)  # warm-up: nvJPEG's handles
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(3):
        decode_jpeg(raw, device=device)
    torch.cuda.synchronize()
    rate = 3 * n / (time.perf_counter() - t)
    what = f"decode, decode_jpeg on the GPU, batches of {n}"
    return {"what": what, "device": str(device), "workers": None, "images_per_s": rate}


def bench(cfg: LoaderBench, folder: Path) -> list[dict]:
    """Every measurement on the ImageFolder ``folder``, as rows (what, device, workers,
    images_per_s); progress on stderr."""
    import sys

    if not (folder / "train").is_dir():
        raise NmncError(
            f"no train/ folder in {folder}; point --set folder=DIR at an ImageFolder "
            "(train/<class>/*.JPEG), or generate one with --set make_folder=200"
        )
    split = FolderSplit(folder / "train", MEAN, STD, SIZE, train=True)
    device = pick_device(cfg.device)
    rows = decode_rows(split, cfg.decode_images)
    for w in worker_counts(cfg):
        print(f"loader: {w} worker(s)", file=sys.stderr, flush=True)
        rows.append(loader_row(split, cfg, w, device))
    print(f"BP on {device}", file=sys.stderr, flush=True)
    rows.append(bp_row(cfg, device))
    if device.type == "cuda":
        rows.append(gpu_decode_row(split, cfg.gpu_decode_images, device))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Parse flags into a :class:`LoaderBench`, measure, print the table and write
    DIR/loader_bench.json with ``--out DIR``."""
    cfg, args = script_settings(
        LoaderBench,
        argv,
        "python scripts/loader_bench.py",
        __doc__,
        OUT_FILE,
        "loader_bench setting",
    )
    check(cfg)
    if args.print_config:
        return print_config(cfg)
    with tempfile.TemporaryDirectory(prefix="loader-bench-") as tmp:
        folder = Path(cfg.folder) if cfg.folder else data_root(cfg.data_root) / "imagenet"
        if cfg.make_folder:
            if not cfg.folder:
                folder = Path(tmp)
            elif folder.exists() and any(folder.iterdir()):
                raise NmncError(
                    f"make_folder writes a new folder, but {folder} is not empty; "
                    "give an empty or new --set folder=DIR, or leave folder unset (temporary)"
                )
            per_class = math.ceil(cfg.make_folder / cfg.make_classes)
            make_image_folder(folder, cfg.make_classes, per_class, tuple(cfg.make_size))
        with warnings.catch_warnings():  # torchvision's decoders are deprecated since 0.29
            warnings.simplefilter("ignore", DeprecationWarning)
            rows = bench(cfg, folder)
    print(tabulate(rows, headers="keys", floatfmt=".1f"))
    if cfg.out:
        atomic_write_text(Path(cfg.out) / OUT_FILE, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    entry(main, "loader_bench")
