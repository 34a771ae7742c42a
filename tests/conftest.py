"""Shared fixtures. Markers say what a test needs and are set from the fixtures it uses:
``data`` (the real datasets under NMNC_DATA_ROOT, default ../shared/data), ``browser`` (headless
Chromium, installed from Debian's packages on first use when missing) and ``slow`` (set by hand;
deselected by default). Nothing is skipped silently: a missing requirement fails the test."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "NMNC_DATA_ROOT" not in os.environ and SHARED.exists():
    os.environ["NMNC_DATA_ROOT"] = str(SHARED)
if os.environ.get(
    "NMNC_DATA_ROOT"
):  # absolute, so subprocesses started elsewhere find the data too
    os.environ["NMNC_DATA_ROOT"] = str(Path(os.environ["NMNC_DATA_ROOT"]).expanduser().resolve())
os.environ.setdefault("BS_INSTALL_DEPENDENCIES", "no")

NEEDS = {"data_root": "data", "cifar": "data", "k92": "data", "chromium": "browser"}


def pytest_collection_modifyitems(items):
    for item in items:
        for fixture, marker in NEEDS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get("NMNC_DATA_ROOT", SHARED))
    if not (root / "cifar10").exists():
        pytest.fail(f"real data not found at {root}; set NMNC_DATA_ROOT to the shared data folder")
    return root


@pytest.fixture(scope="session")
def cifar(data_root):
    from nmnc.data import load_dataset

    return load_dataset("cifar10", data_root)


def _find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    """A headless Chromium binary; installed with apt-get (Debian's package) when missing."""
    found = _find_chromium()
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.fail(
            "headless Chromium is needed and could not be installed here: "
            "run 'apt-get install chromium' as root"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
    ):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            pytest.fail(f"'{' '.join(cmd)}' failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    found = _find_chromium()
    if not found:
        pytest.fail("apt-get installed chromium but no chromium binary is on PATH")
    return found


@pytest.fixture(scope="session")
def read_only(tmp_path_factory):
    """A folder this process cannot write: a permission bit where that binds (not root), else a
    read-only tmpfs (root, as here and in CI), else sysfs, which refuses new folders."""
    folder = tmp_path_factory.mktemp("ro")
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        yield Path("/sys/nmnc-test")
        return
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def cifar_tree():
    """Build a CIFAR-10 image-folder tree: ``make(root, per_class, ext)`` writes seeded 32x32
    images for the classes airplane and cat into ``root/cifar10/{train,test}/<class>/<j>.<ext>``
    and returns ``root``."""
    import numpy as np
    from PIL import Image

    def make(root: Path, per_class: int = 3, ext: str = "png") -> Path:
        rng = np.random.default_rng(0)
        for split in ("train", "test"):
            for name in ("airplane", "cat"):
                d = root / "cifar10" / split / name
                d.mkdir(parents=True)
                for j in range(per_class):
                    pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(d / f"{j}.{ext}")
        return root

    return make
