"""``revise serve``: the web page, registered from revise/serve with the embedded default model."""

from __future__ import annotations

from .common import DEFAULT_MODEL, EXAMPLES_DIR


def add_parser(sub) -> None:
    from ..serve import add_serve_command

    add_serve_command(sub, DEFAULT_MODEL, EXAMPLES_DIR)
