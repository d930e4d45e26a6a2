"""``telex worker``: run consumers from a routing list (see issue: workers)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser("worker", help="run consumers for the channels a routing list names")


def run(args: argparse.Namespace) -> int:
    from . import UsageError

    raise UsageError("the worker is not available in this build yet")
