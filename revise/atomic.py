"""Writing files and folders so that a reader sees the whole of one or none of it.

Everything is written beside its destination under a hidden temporary name and renamed onto it
(``os.replace``, atomic on one file system) only once complete. If writing fails, the temporary file
is removed and the destination is untouched; for files, a full disk or a read-only folder becomes a
:class:`~revise.errors.ReviseEnvironmentError` that names the destination. A folder replacing an
old one moves the old one aside first (a folder cannot be renamed onto a non-empty one), so a
reader finds the old folder or the new one at the path, missing only between two renames.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import is_storage_error, storage_error

NOTHING_WRITTEN = "nothing was written there"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; move it onto ``path`` if the block succeeds,
    delete it if the block raises. Parent folders are created."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = fresh_file(path.parent, f".{path.stem}.tmp-", suffix)   # ordinary final permissions
    except OSError as err:
        if is_storage_error(err):
            raise storage_error(path, err, NOTHING_WRITTEN) from err
        raise
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if is_storage_error(err):
            raise storage_error(path, err, NOTHING_WRITTEN) from err
        raise


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    path = Path(path)
    with atomic_path(path, path.suffix) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh empty folder beside ``path``; it replaces ``path`` if the block succeeds and is
    deleted if the block raises. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        replace_folder(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def replace_folder(done: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Move the complete folder ``done`` onto ``path`` (on the same file system), replacing what is there."""
    path = Path(path)
    if path.exists():
        old = path.with_name(f".{path.name}.old-{secrets.token_hex(4)}")
        os.replace(path, old)
        os.replace(done, path)
        shutil.rmtree(old)
    else:
        os.replace(done, path)
    return path


def fresh_file(folder: Path, prefix: str = "", suffix: str = "", mode: int = 0o666, nbytes: int = 4) -> Path:
    """Create an empty file in ``folder`` under a new random name (O_EXCL: never one that exists) and
    return its path. ``mode`` is less the umask; ``nbytes`` random bytes make the name."""
    while True:
        path = folder / f"{prefix}{secrets.token_hex(nbytes)}{suffix}"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
            return path
        except FileExistsError:
            continue
