"""The ``telex`` command: ``telex serve`` and ``telex worker``.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and
``run(args) -> int``; this module only dispatches and turns user errors into
one-line messages with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__

SUBCOMMANDS = ("serve", "worker")


class UsageError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="telex",
        description="Telex: an ASGI 1 (channel layer) interface server and worker.",
    )
    parser.add_argument("--version", action="version", version=f"telex {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(f"{__name__}.{args.command}")
    try:
        return module.run(args)
    except UsageError as exc:
        print(f"telex {args.command}: error: {exc}", file=sys.stderr)
        return 2
