"""The ``revise`` command line: one module per command (``edit``, ``demo``, ``info``, ``train``,
``synth``, ``bench``, ``convert``, ``serve``), each with its ``add_parser(sub)`` and ``cmd_*``.

Bad input ends with one line on stderr and exit code 2; a fault of the machine (full disk,
read-only or forbidden folder, memory exhausted) with one line and exit code 1. Neither leaves
partial output.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import ReviseEnvironmentError, ReviseInputError, is_storage_error
from . import bench, convert, demo, edit, info, serve, synth, train
from .common import (BUNDLED_MODEL, DEFAULT_MODEL, DEFAULT_NAME, EXAMPLES_DIR, MODEL_HELP, _add_sampling_args, _fail,
                     _model, _out_of_memory, _Parser, _quiet_libraries, _version)

__all__ = ["BUNDLED_MODEL", "DEFAULT_MODEL", "DEFAULT_NAME", "EXAMPLES_DIR", "MODEL_HELP", "build_parser", "main",
           "_Parser", "_add_sampling_args", "_model", "_quiet_libraries"]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="revise", description="Reason-informed video editing with a unified model (ReViSE).")
    parser.add_argument("--version", action="version", version=f"revise {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for command in (edit, info, convert, train, synth, bench, demo, serve):
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except ReviseInputError as err:
        return _fail(str(err), 2)
    except ReviseEnvironmentError as err:
        return _fail(str(err), 1)
    except OSError as err:  # a storage fault outside the atomic writers
        if not is_storage_error(err):
            raise
        return _fail(f"{err.strerror or err}" + (f": '{err.filename}'" if err.filename else ""), 1)
    except MemoryError:
        return _fail("out of memory: the machine could not hold this run (a smaller --size, --frames or model "
                     "needs less)", 1)
    except RuntimeError as err:  # torch's allocators raise RuntimeError subclasses when memory runs out
        if not _out_of_memory(err):
            raise
        return _fail(f"out of memory: {str(err).splitlines()[0][:200]}", 1)
    except KeyboardInterrupt:
        print("revise: interrupted", file=sys.stderr)
        return 130



if __name__ == "__main__":
    sys.exit(main())
