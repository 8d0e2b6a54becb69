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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; move it onto ``path`` if the block succeeds,
    delete it if the block raises. Parent folders are created."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _reserve(path, suffix)
    except OSError as err:
        if is_storage_error(err):
            raise storage_error(path, err) from err
        raise
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if is_storage_error(err):
            raise storage_error(path, err) from err
        raise


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    path = Path(path)
    with atomic_path(path, path.suffix) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _reserve(path: Path, suffix: str) -> Path:
    """Create an empty file under a fresh hidden name beside ``path`` (O_EXCL; 0o666 less the umask:
    a private name, yet ordinary final permissions)."""
    while True:
        tmp = path.with_name(f".{path.stem}.tmp-{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
