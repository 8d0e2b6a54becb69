"""Errors that mean "the user gave us something we cannot use".

The CLI turns a :class:`ReviseInputError` into one line on stderr and exit code 2;
library callers get an ordinary exception they can catch.
"""


class ReviseInputError(ValueError):
    """Bad input from the user: a missing file, an unreadable video, a wrong size."""
