"""Download a file into place with a checksum, atomically (``.part`` file, verify, rename)."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DataError
from ..progress import tqdm


def file_hash(path: Path, algo: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MB chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(
    url: str,
    dest: Path,
    checksum: str | None = None,
    algo: str = "sha256",
    what: str = "",
    timeout: float = 15.0,
) -> Path:
    """Fetch ``url`` to ``dest`` unless a file with the right checksum is already there."""
    dest = Path(dest)
    what = what or dest.name
    if dest.exists() and (checksum is None or file_hash(dest, algo) == checksum):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + f".{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=f"download {what}", leave=False
            ) as bar:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        part.unlink(missing_ok=True)
        reason = getattr(err, "reason", err)
        raise DataError(
            f"could not download {what} from {url} ({reason}); "
            f"without internet, put the file at {dest}"
        ) from None
    if checksum is not None:
        got = file_hash(part, algo)
        if got != checksum:
            part.unlink(missing_ok=True)
            raise DataError(
                f"{what} downloaded from {url} has {algo} {got}, expected {checksum}; "
                "the source changed or the transfer broke; nothing was kept"
            )
    os.replace(part, dest)
    return dest
