"""The results table: the one owner of its schema (:class:`ResultRow`), appended to under an
exclusive file lock so scorers running at once lose no rows; each batch of rows is written whole and
fsynced before the lock is released."""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import io
import os
from collections.abc import Callable, Iterable, Mapping
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
    score: float | None  # raw_score normalised as ``normalisation`` says
    ci_low: float | None = None  # 95% interval of score
    ci_high: float | None = None
    raw_score: float | None = None  # RSA: the comparison; neural: Pearson r (Brain-Score's median)
    ceiling: float | None = None
    # how score is made from raw_score: 'raw/ceiling' (RSA), 'r2/ceiling' (Brain-Score's neural
    # explained variance), 'r2' (neural, no ceiling), 'none'
    normalisation: str = ""
    raw_ci_low: float | None = None  # 95% interval of raw_score
    raw_ci_high: float | None = None
    error: float | None = None  # Brain-Score's standard error, where it gives one
    n_stimuli: int | None = None  # stimuli the score is computed on
    time: float | None = None  # seconds for this model and benchmark, extraction included
    details: str = "{}"  # JSON: metric settings (method, neurons, splits, selected_on, ...)
    data_hash: str = ""  # digest of the benchmark's data (responses, RDMs, stimuli)
    settings: str = "{}"  # JSON: the benchmark settings that define the score


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


def append_rows(
    path: str | Path,
    rows: Iterable[ResultRow | Mapping],
    replaces: Callable[[dict], bool] | None = None,
    unless: Callable[[dict], bool] | None = None,
) -> bool:
    """Append rows to the CSV table at ``path`` (created with a header if absent), under a file
    lock; with ``replaces``, the old rows it is true for are dropped in the same step. With
    ``unless``, nothing is written when an old row makes it true (another process wrote those
    rows meanwhile); returns whether the rows were written.

    A table written before some columns existed, or one losing rows, is rewritten whole
    (atomically, under the lock) with today's header first, so no column of a new row is dropped.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dicts = [_as_dict(r) for r in rows]
    while (done := _append_locked(path, dicts, replaces, unless)) is None:
        pass  # another writer replaced the file while this one waited for its lock: reopen
    return done


REQUIRED = ("model", "benchmark", "layer", "committed", "score")  # what makes a table ours


def _append_locked(path: Path, dicts: list[dict], replaces=None, unless=None) -> bool | None:
    """Append under the lock; None when the file was replaced before the lock was taken, False
    when ``unless`` holds for an old row. The rows land whole or not at all: a failed write (a
    full disk) is cut back to the old end."""
    from nmnc.errors import DataError

    with open(path, "a+", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            if not path.exists() or os.fstat(f.fileno()).st_ino != os.stat(path).st_ino:
                return None
            header = _header(f)
            missing = [c for c in REQUIRED if header and c not in header]
            if missing:
                raise DataError(
                    f"{path} is not a results table written by brain_benchmarks.score (its header "
                    f"lacks {', '.join(missing)}); nothing was appended: give another --out folder"
                )
            columns = header or COLUMNS
            if unless is not None and header:
                f.seek(0)
                if any(unless(r) for r in csv.DictReader(f)):
                    return False
            if set(COLUMNS) - set(columns) or (header and replaces is not None):
                _rewrite(path, f, dicts, replaces)  # old rows and these, under today's header
                return True
            end = f.seek(0, os.SEEK_END)
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
            if end == 0:
                w.writeheader()
            w.writerows(dicts)
            _write_whole(f.fileno(), buf.getvalue().encode(), end, path)
            return True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write_whole(fd: int, data: bytes, end: int, path: Path) -> None:
    """Write ``data`` at the end of the file and fsync it; on failure cut the file back to
    ``end`` (no torn row) and raise a one-line error."""
    from nmnc.errors import DataError

    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as err:
        os.ftruncate(fd, end)
        if end == 0:  # the table did not exist before this append
            path.unlink(missing_ok=True)
        raise DataError(
            f"could not append to {path} ({err.strerror or err}); the table is as it was before: "
            "free some space or give another --out folder"
        ) from None


def _rewrite(path: Path, f, new: list[dict], replaces=None) -> None:
    """Replace the table open as ``f`` (atomically) by its rows (less those ``replaces`` is true
    for) and ``new`` under every column of :data:`COLUMNS`; old rows keep their values and leave
    new columns empty."""
    from nmnc.io import atomic_path

    f.seek(0)
    reader = csv.DictReader(f)
    old = [r for r in reader if replaces is None or not replaces(r)]
    extra = [c for c in reader.fieldnames or [] if c not in COLUMNS]  # a user's own columns
    with atomic_path(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as out:
            w = csv.DictWriter(out, fieldnames=COLUMNS + extra, extrasaction="ignore")
            w.writeheader()
            w.writerows(old + new)


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


def commitments(df: pd.DataFrame, checkpoint_hash: str, layers) -> dict[str, dict]:
    """Region -> {'layer', 'benchmark'}: the layer chosen on data for these weights, from the
    committed rows of the table (``region`` and ``species`` filled in). Rows of public
    Brain-Score benchmarks (their layer is Brain-Score's choice) and layers the network does not
    have are left out; a cross-fitted row commits the layer its details name (``commit``).
    Macaque rows come first, then rows of unknown species; then the newest benchmark version,
    then the last row written."""
    import json

    from .benchmarks import PUBLIC_INFO

    c = df[
        (df.checkpoint_hash.astype(str) == checkpoint_hash)
        & (df.committed.astype(str).str.lower() == "true")
        & ~df.benchmark.astype(str).isin(list(PUBLIC_INFO))
    ].copy()
    if c.empty:
        return {}

    def commit(details, layer) -> str:
        try:
            return str(json.loads(details).get("commit", layer))
        except (TypeError, ValueError, AttributeError):
            return str(layer)

    details = c["details"] if "details" in c else [None] * len(c)
    c["commit_layer"] = [commit(d, layer) for d, layer in zip(details, c.layer)]
    c = c[c.commit_layer.isin(list(layers))]
    species = c.species.fillna("").astype(str)
    c["rank_"] = species.map(lambda s: 0 if s == "macaque" else 1 if s == "" else 2)
    version = c["version"] if "version" in c else pd.Series(0, index=c.index)
    c["version_"] = pd.to_numeric(version, errors="coerce").fillna(0)
    c["order_"] = range(len(c))
    c = c.sort_values(["rank_", "version_", "order_"], ascending=[True, False, False])
    out: dict[str, dict] = {}
    for r in c.itertuples():
        out.setdefault(str(r.region), {"layer": r.commit_layer, "benchmark": str(r.benchmark)})
    return out


def join_cells(cells: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """A training grid's cells table (``cells.csv``, one row per final run) with a column per
    benchmark: the committed score of each run's weights, matched on the weights' hash (so a
    moved run folder still matches); empty where a run was not scored on that benchmark."""
    committed = results[results.committed.astype(str).str.lower() == "true"]
    wide = committed.pivot_table(
        index="checkpoint_hash", columns="benchmark", values="score", aggfunc="last"
    )
    wide.columns.name = None
    return cells.merge(wide, how="left", left_on="weights_hash", right_index=True)
