"""CIFAR-10 from the official python release, an ImageFolder tree, or a zip of one.

Looked for under ``<data root>/cifar10`` (or ``<data root>`` itself):
- ``cifar-10-batches-py/`` (the official release, as torchvision downloads it);
- ``train/<class>/*`` and ``test/<class>/*`` image folders;
- a ``*.zip`` holding such a tree (read in place; decoded images are cached once).
With ``download=True`` the official release is fetched and its checksum verified.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..io import atomic_path
from . import DATASETS, ImageData, NoSettings
from .archive import check_member, safe_extract
from .download import fetch
from .paths import cache_dir
from .splits import TensorSplit

URL = os.environ.get("NMNC_CIFAR10_URL", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
MD5 = "c58f30108f718f92721af3b95e74349a"
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _how_to(root: Path) -> str:
    return (
        "put the official python release (cifar-10-batches-py/), train/ and test/ image folders, "
        f"or a zip of them in {root / 'cifar10'}, pass --download to fetch {URL}, "
        "or point --data-root / NMNC_DATA_ROOT at a folder holding cifar10/"
    )


@DATASETS.register(
    "cifar10",
    NoSettings,
    help="CIFAR-10, 32x32, 10 classes (official release, image folders or a zip)",
)
def cifar10(
    root: Path, download: bool = False, input_size: int | None = None, settings=None, arg=None
) -> ImageData:
    """CIFAR-10 from the data root (official release, image folders or a zip), or downloaded."""
    arrays, source = _find(root, download)
    (xtr, ytr), (xte, yte) = arrays
    size = input_size or 32
    mk = lambda x, y: TensorSplit(torch.from_numpy(x), torch.from_numpy(y).long(), MEAN, STD, size)  # noqa: E731
    return ImageData(
        "cifar10", mk(xtr, ytr), mk(xte, yte), list(CLASSES), MEAN, STD, size, str(source)
    )


def _find(root: Path, download: bool):
    for base in (root / "cifar10", root):
        if (base / "cifar-10-batches-py").is_dir():
            return _from_official(base), base / "cifar-10-batches-py"
        if (base / "train").is_dir() and (base / "test").is_dir():
            return _cached(
                base, lambda: (_read_folder(base / "train"), _read_folder(base / "test"))
            ), base
        if base.is_dir():
            zips = sorted(base.glob("*.zip"))
            if zips:
                z = zips[0]
                return _cached(z, lambda: _read_zip(z)), z
    if download:
        target = root / "cifar10"
        tarball = fetch(URL, target / "cifar-10-python.tar.gz", MD5, "md5", what="CIFAR-10")
        safe_extract(tarball, target / "_extract")
        os.replace(target / "_extract" / "cifar-10-batches-py", target / "cifar-10-batches-py")
        return _from_official(target), target / "cifar-10-batches-py"
    raise DataError(f"cifar10: no data found in {root / 'cifar10'} or {root}; {_how_to(root)}")


def _from_official(base: Path):
    """Read the official python release (pickled batches of 3072-byte rows, channel-major) with
    a restricted unpickler: a batch file that names anything but numpy arrays is refused before
    any of it runs."""
    import pickle

    from .unpickle import RefusedClass, load

    folder = base / "cifar-10-batches-py"

    def read(names):
        xs, ys = [], []
        for name in names:
            try:
                with open(folder / name, "rb") as f:
                    d = load(f, encoding="latin1")
                xs.append(
                    np.asarray(d["data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
                )
                ys.append(np.asarray(d.get("labels", d.get("fine_labels")), np.int64))
            except RefusedClass as err:
                raise DataError(
                    f"cifar10: {folder / name} is not a CIFAR-10 batch: {err}; nothing in it was "
                    f"run. Delete {folder} and download the official release again"
                ) from None
            except (
                OSError,
                EOFError,
                KeyError,
                ValueError,
                TypeError,
                AttributeError,
                pickle.UnpicklingError,
            ) as err:  # not a dict of 'data' and 'labels', or cut off
                raise DataError(
                    f"cifar10: {folder / name} is missing or damaged "
                    f"({type(err).__name__}: {err}); "
                    f"delete {folder} and download the release again"
                ) from None
        return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)

    return read([f"data_batch_{i}" for i in range(1, 6)]), read(["test_batch"])


def content_key(source: Path) -> str:
    """A digest of a file's or a folder tree's path, size, mtime, inode and ctime, for a tree of
    every member: adding, removing or replacing any file changes it (a copy that keeps the mtime,
    ``cp -p`` or ``rsync -a``, still makes a new inode or ctime, which no tool sets back)."""
    h = hashlib.sha1(str(source.resolve()).encode())
    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
    for f in files:
        st = f.stat()
        name = f.relative_to(source) if f != source else ""
        h.update(f"|{name}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_ctime_ns}".encode())
    return h.hexdigest()[:16]


def _cached(source: Path, read):
    """Decode once; later runs load the decoded arrays from the cache (keyed by
    :func:`content_key`)."""
    key = content_key(source)
    path = cache_dir() / "cifar10" / f"decoded-{key}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                return (z["xtr"], z["ytr"]), (z["xte"], z["yte"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt
    (xtr, ytr), (xte, yte) = read()
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, xtr=xtr, ytr=ytr, xte=xte, yte=yte)
    return (xtr, ytr), (xte, yte)


def _decode(items: list[tuple[str, bytes]]) -> np.ndarray:
    """RGB arrays of (name, encoded image) pairs; a file PIL cannot read is a one-line error
    naming it."""
    from PIL import Image

    out = []
    for name, data in items:
        try:
            out.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        except (OSError, ValueError, SyntaxError) as err:  # PIL's errors for a broken image
            raise DataError(
                f"cifar10: cannot read image {name} ({err}); replace or delete that file"
            ) from None
    return np.stack(out)


def _decode_all(names: list[str], blobs: list[bytes]) -> np.ndarray:
    items = list(zip(names, blobs))
    chunks = [items[i : i + 5000] for i in range(0, len(items), 5000)]
    workers = min(len(chunks), os.cpu_count() or 1)
    if workers <= 1:
        return np.concatenate([_decode(c) for c in chunks])
    with ProcessPoolExecutor(workers) as ex:
        return np.concatenate(list(ex.map(_decode, chunks)))


def _split_members(names: list[str], where: str):
    """Map 'train'/'test' to [(member, class)] for members '<prefix>/<split>/<class>/<file>'."""
    out = {"train": [], "test": []}
    for name in names:
        parts = name.split("/")
        if len(parts) >= 3 and parts[-3] in out and parts[-1] and parts[-2] in CLASSES:
            out[parts[-3]].append((name, parts[-2]))
    for split, members in out.items():
        if not members:
            raise DataError(
                f"cifar10: {where} has no {split}/<class>/<image> entries "
                f"with the CIFAR-10 class names ({', '.join(CLASSES)})"
            )
    return out


def _read_zip(path: Path):
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            for n in names:
                check_member(n, path)
            result = []
            for split, members in _split_members(names, str(path)).items():
                members.sort()
                blobs = [zf.read(m) for m, _ in members]
                labels = np.array([CLASSES.index(c) for _, c in members], np.int64)
                names = [f"{path}:{m}" for m, _ in members]
                result.append((_decode_all(names, blobs), labels))
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(
            f"cifar10: {path} is not a readable zip ({err}); replace it with an intact copy"
        ) from None
    return tuple(result)


def _read_folder(folder: Path):
    members = sorted(
        (str(p), p.parent.name)
        for p in folder.glob("*/*")
        if p.is_file() and p.parent.name in CLASSES
    )
    if not members:
        raise DataError(
            f"cifar10: {folder} has no <class>/<image> files with the CIFAR-10 class names"
        )
    blobs = [Path(m).read_bytes() for m, _ in members]
    return _decode_all([m for m, _ in members], blobs), np.array(
        [CLASSES.index(c) for _, c in members], np.int64
    )
