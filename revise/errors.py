"""Errors that end a command with one clear line instead of a traceback.

* :class:`ReviseInputError`: the user gave us something we cannot use (a missing file, an
  unreadable video, a wrong size). The CLI prints it and exits with code 2.
* :class:`ReviseEnvironmentError`: the input was fine but the machine could not finish (a full
  disk, a read-only or forbidden output folder). The CLI prints it and exits with code 1.

Library callers get ordinary exceptions they can catch.
"""

from __future__ import annotations

import errno
import os


class ReviseInputError(ValueError):
    """Bad input from the user: a missing file, an unreadable video, a wrong size."""


class ReviseEnvironmentError(RuntimeError):
    """Good input, but the storage failed us: a full disk, a read-only or forbidden folder."""


#: ``errno`` values that blame the storage we write to, not the input.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                            errno.EIO})


def is_storage_error(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in STORAGE_ERRNOS


def storage_error(path: str | os.PathLike[str], err: BaseException, then: str = "") -> ReviseEnvironmentError:
    """A one-line :class:`ReviseEnvironmentError` naming the path the user asked for (not a temporary
    name); ``then`` says what the user can do next."""
    reason = getattr(err, "strerror", None) or " ".join(str(err).split()) or type(err).__name__
    return ReviseEnvironmentError(f"cannot write '{path}': {reason}" + (f"; {then}" if then else ""))
