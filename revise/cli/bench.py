"""``revise bench run | score | report``: registered from the harness's own module (revise/bench/cli.py)."""

from __future__ import annotations

from ..bench.cli import add_bench_parser as add_parser

__all__ = ["add_parser"]
