"""The ``telex`` command: ``telex serve`` and ``telex worker``.

Each subcommand lives in its own module with ``add_parser(subparsers)``,
``add_arguments(parser)`` and ``run(args) -> int``; this module only dispatches
and turns user errors into one-line messages with a non-zero exit status.
Only the chosen subcommand gets its arguments: ``telex worker`` must not load
the server's settings (a worker loads no server code), nor ``telex serve``
the worker's.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__
from . import _flags

SUBCOMMANDS = ("serve", "worker")


class UsageError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""

    status = 2


class LayerUnreachable(UsageError):
    """The channel layer did not answer at start; one line, exit status 1, so that a
    supervisor (systemd, ``--workers``) restarts the command until it does."""

    status = 1


class StartupFailed(UsageError):
    """The application's own start-up failed (an ASGI lifespan startup): one line, exit status 1."""

    status = 1


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``telex`` parser, with the arguments of ``command`` (of every subcommand if None)."""
    parser = argparse.ArgumentParser(
        prog="telex",
        description="Telex: an ASGI 1 (channel layer) interface server and worker.",
    )
    parser.add_argument("--version", action="version", version=f"telex {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        subparser = module.add_parser(subparsers)
        if command in (None, name):
            module.add_arguments(subparser)
    return parser


def parse(parser: argparse.ArgumentParser, words: list[str]) -> argparse.Namespace:
    """Parse, with a subcommand's mistakes reported under that subcommand's usage
    (argparse reports unknown flags under the top-level one)."""
    args, unknown = parser.parse_known_args(words)
    if args.command is None:
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        return args
    subparser, _ = getattr(args, _flags.PARSER)
    if unknown:
        subparser.error(f"unrecognized arguments: {' '.join(unknown)}")
    _flags.finish(args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    # The command is the first word that is not an option: the top-level
    # parser has no option that takes a value.
    parser = build_parser(next((word for word in words if not word.startswith("-")), ""))
    args = parse(parser, words)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(f"{__name__}.{args.command}")
    args.words = words  # a supervisor (--workers, --reload) runs the same command line again
    try:
        return module.run(args)
    except UsageError as exc:
        print(f"telex {args.command}: error: {exc}", file=sys.stderr)
        return exc.status
