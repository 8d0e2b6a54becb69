"""Writing files so that a reader sees the whole file or none of it.

Everything is written beside its destination under a hidden temporary name and renamed onto it
(``os.replace``, atomic on one file system) only once complete. If writing fails, the temporary file
is removed and the destination is untouched; a full disk or a read-only folder becomes a
:class:`~revise.errors.ReviseEnvironmentError` that names the destination.
"""

from __future__ import annotations

import contextlib
import os
import secrets
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
