"""The results table: tidy rows appended under an exclusive file lock, so scorers running at once
lose no rows; each row is written whole and fsynced before the lock is released."""
from __future__ import annotations

import csv
import fcntl
import io
import os
from pathlib import Path

import pandas as pd

COLUMNS = ["model", "architecture", "rule", "seed", "checkpoint_hash", "benchmark", "version", "layer", "committed",
           "score", "ci_low", "ci_high", "raw_score", "ceiling", "error", "n_stimuli", "time", "details"]


def append_rows(path: str | Path, rows: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0, os.SEEK_END)
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
            if f.tell() == 0:
                w.writeheader()
            for r in rows:
                w.writerow(r)
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_results(path: str | Path) -> pd.DataFrame:
    from nmnc.errors import DataError

    path = Path(path)
    if not path.exists():
        raise DataError(f"no results table at {path}; run 'python -m brain_benchmarks.score --model ... --out {path}' first")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not a readable results table ({str(err).splitlines()[0]})") from None
    missing = [c for c in ("model", "benchmark", "layer", "committed", "score") if c not in df.columns]
    if missing:
        raise DataError(f"{path} lacks the columns {', '.join(missing)}; it was not written by brain_benchmarks.score")
    return df
