"""The results table: the one owner of its schema (:class:`ResultRow`), appended to under an
exclusive file lock so scorers running at once lose no rows; each batch of rows is written whole and
fsynced before the lock is released."""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class ResultRow:
    """One score of one model on one benchmark at one layer (the committed layer, or any layer)."""

    model: str  # what the user gave: a checkpoint path, 'pixels', 'random:cnn', a zoo name
    architecture: str
    rule: str
    seed: int | None
    checkpoint_hash: str  # content hash of the weights: the identity of a trained variant
    benchmark: str
    version: int
    region: str  # brain region the benchmark's data come from ('IT', 'V4', ...)
    species: str
    layer: str
    committed: bool  # the layer chosen on one half of the stimuli, scored on the other half
    score: float | None  # raw_score / ceiling when a ceiling is known, else raw_score
    ci_low: float | None = None  # 95% interval of score
    ci_high: float | None = None
    raw_score: float | None = None
    ceiling: float | None = None
    error: float | None = None  # Brain-Score's standard error, where it gives one
    n_stimuli: int | None = None  # stimuli the score is computed on
    time: float | None = None  # seconds for this model and benchmark, extraction included
    details: str = "{}"  # JSON: metric settings (method, neurons, splits, selected_on, ...)


COLUMNS = [f.name for f in dataclasses.fields(ResultRow)]


def _as_dict(row: ResultRow | Mapping) -> dict:
    if isinstance(row, ResultRow):
        return dataclasses.asdict(row)
    unknown = sorted(set(row) - set(COLUMNS))
    if unknown:
        raise ValueError(
            f"result rows have no columns {', '.join(unknown)}; "
            f"the columns are {', '.join(COLUMNS)}"
        )
    return dict(row)


def _header(f) -> list[str]:
    f.seek(0)
    first = f.readline()
    return next(csv.reader([first])) if first.strip() else []


def append_rows(path: str | Path, rows: Iterable[ResultRow | Mapping]) -> None:
    """Append rows to the CSV table at ``path`` (created with a header if absent), under a file
    lock.

    A table written before ``region`` and ``species`` were columns keeps its own header; the rows go
    in its column order and :func:`read_results` fills the two columns back in.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dicts = [_as_dict(r) for r in rows]
    with open(path, "a+", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            columns = _header(f) or COLUMNS
            f.seek(0, os.SEEK_END)
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
            if f.tell() == 0:
                w.writeheader()
            w.writerows(dicts)
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_results(path: str | Path) -> pd.DataFrame:
    """The results table as a DataFrame; old tables get ``region`` and ``species`` filled in."""
    from nmnc.errors import DataError

    path = Path(path)
    if not path.exists():
        raise DataError(
            f"no results table at {path}; run 'python -m brain_benchmarks.score --model ... "
            f"--out {path.parent}' first"
        )
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(
            f"{path} is not a readable results table ({str(err).splitlines()[0]})"
        ) from None
    missing = [
        c for c in ("model", "benchmark", "layer", "committed", "score") if c not in df.columns
    ]
    if missing:
        raise DataError(
            f"{path} lacks the columns {', '.join(missing)}; "
            "it was not written by brain_benchmarks.score"
        )
    return _fill_region_species(df)


def _fill_region_species(df: pd.DataFrame) -> pd.DataFrame:
    """Region and species from the benchmark registry where the table lacks them (else empty)."""
    from .benchmarks import benchmark_info

    infos = df.benchmark.astype(str).map(benchmark_info)
    for col in ("region", "species"):
        if col not in df.columns:
            df[col] = None
        known = infos.map(lambda i, col=col: getattr(i, col, None) or "")
        df[col] = df[col].where(df[col].notna() & (df[col].astype(str) != ""), known)
    return df
