import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "NMNC_DATA_ROOT" not in os.environ and SHARED.exists():
    os.environ["NMNC_DATA_ROOT"] = str(SHARED)
if os.environ.get("NMNC_DATA_ROOT"):  # absolute, so subprocesses started elsewhere find the data too
    os.environ["NMNC_DATA_ROOT"] = str(Path(os.environ["NMNC_DATA_ROOT"]).expanduser().resolve())
os.environ.setdefault("BS_INSTALL_DEPENDENCIES", "no")


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
