"""Where data and caches live: ``--data-root`` > ``$NMNC_DATA_ROOT`` > a per-user cache folder."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$NMNC_CACHE`` or ``$XDG_CACHE_HOME/nmnc`` (``~/.cache/nmnc``)."""
    if os.environ.get("NMNC_CACHE"):
        return Path(os.environ["NMNC_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "nmnc"


def data_root(flag: str | os.PathLike | None = None) -> Path:
    """The data root: the flag if given, else ``$NMNC_DATA_ROOT``, else ``<cache>/data``."""
    if flag:
        return Path(flag).expanduser()
    if os.environ.get("NMNC_DATA_ROOT"):
        return Path(os.environ["NMNC_DATA_ROOT"]).expanduser()
    return cache_dir() / "data"
