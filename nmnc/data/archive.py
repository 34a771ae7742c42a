"""Reading and unpacking archives without ever writing outside the target folder."""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import DataError
from ..io import replace_folder, writing


def check_member(name: str, archive: Path) -> PurePosixPath:
    """Reject absolute paths and ``..`` components in an archive member name."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise DataError(
            f"unsafe path '{name}' in archive {archive}: absolute paths and '..' are refused; "
            "re-create the archive with relative paths"
        )
    return p


def safe_extract(archive: Path, target: Path) -> Path:
    """Unpack a .zip or .tar(.gz) into ``target`` (created), checking every member first."""
    archive, target = Path(archive), Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with writing(target):  # a full disk names the target
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    for info in zf.infolist():
                        check_member(info.filename, archive)
                    zf.extractall(tmp)
            elif tarfile.is_tarfile(archive):
                with tarfile.open(archive) as tf:
                    for m in tf.getmembers():
                        check_member(m.name, archive)
                        if not (m.isfile() or m.isdir()):
                            raise DataError(
                                f"archive {archive} holds a link or device '{m.name}'; "
                                "only files and folders are accepted"
                            )
                    tf.extractall(tmp)
            else:
                raise DataError(f"{archive} is neither a zip nor a tar archive")
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DataError(
                f"archive {archive} is damaged ({err}); delete it and obtain it again"
            ) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return replace_folder(tmp, target)
