"""``telex serve``: run consumers from a routing list (the interface server)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser("serve", help="run the interface server")


def run(args: argparse.Namespace) -> int:
    from . import UsageError

    raise UsageError("the serve is not available in this build yet")
