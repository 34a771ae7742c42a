"""Atomic writes: the one owner of "write to a temporary file, then rename".

Readers never see half a file: every checkpoint, cache entry, table and report goes through
:func:`atomic_path`, which yields a temporary path in the destination folder and renames it over
the destination only when the block finishes without an error. :func:`exclusive` gives one writer
a folder for as long as it works in it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    A write that fails for lack of space or permission leaves ``path`` as it was and is a one-line
    :class:`~nmnc.errors.NmncError` naming it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            if tmp.exists():
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
            os.replace(tmp, path)
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a read-only disk refuses even this; there is nothing to remove
            pass


# failures of a write that the user fixes (space, quota, permissions, read-only disks)
WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)


@contextmanager
def writing(path: str | os.PathLike, named_by_error: bool = False) -> Iterator[None]:
    """A write in the block that fails for lack of space or permission becomes a one-line
    :class:`~nmnc.errors.WriteError` naming ``path`` (or, with ``named_by_error``, the file the
    system names); other errors pass unchanged."""
    try:
        yield
    except OSError as err:
        if err.errno not in WRITE_ERRNOS:
            raise
        where = err.filename if named_by_error and err.filename else path
        raise write_error(Path(where), err) from None


def write_error(path: Path, err: OSError):
    """The one-line error for a failed write of ``path`` (which was left as it was)."""
    from .errors import WriteError

    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        fix = "free space on that disk or choose another folder"
    else:
        fix = "make the folder writable or choose another one"
    return WriteError(f"could not write {path} ({err.strerror}); it is as it was before: {fix}")


def replace_folder(work: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Put the finished folder ``work`` at ``dest``: the old ``dest`` is renamed aside first and
    removed last, so a crash at any point leaves either folder whole on disk."""
    import shutil

    work, dest = Path(work), Path(dest)
    old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
    if dest.exists():
        os.replace(dest, old)
    os.replace(work, dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode())


@contextmanager
def exclusive(lock: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive lock on the file ``lock`` for the block; another process holding it is a
    one-line error naming it. The operating system drops the lock when its holder dies, so a
    crashed run's lock is taken over by the next one."""
    from .errors import NmncError

    with writing(lock):
        f = open(lock, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise NmncError(
            f"{what} is in use by {holder}; wait for it to finish or choose another --out"
        ) from None
    try:
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} on {socket.gethostname()}")
        f.flush()
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
