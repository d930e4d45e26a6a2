"""``telex worker ROUTING --layer LAYER``: run consumers in the foreground.

Runs until SIGTERM or SIGINT, then stops receiving, lets the running
consumers finish and exits 0 (1 if some were still running after
``--stop-timeout``). Flags and behaviour: ``docs/worker.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

LAYER_VARIABLE = "TELEX_LAYER"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run consumers for the channels a routing list names",
        description="Run the consumers of a routing list against a channel layer, until SIGTERM/SIGINT.",
    )
    parser.add_argument("routing", metavar="ROUTING", help="the routing list, as module:attribute")
    parser.add_argument(
        "--layer",
        default=None,
        help=f"channel layer: redis://host:6379/0, module:attribute, ... (default: ${LAYER_VARIABLE})",
    )
    parser.add_argument("--threads", type=int, default=1, help="consumer threads in this process (default 1)")
    parser.add_argument(
        "--only-channels",
        nargs="+",
        default=None,
        metavar="GLOB",
        help="listen only on routed channels matching one of these globs",
    )
    parser.add_argument(
        "--exclude-channels",
        nargs="+",
        default=None,
        metavar="GLOB",
        help="do not listen on routed channels matching one of these globs",
    )
    parser.add_argument(
        "--ordering-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="skip a message enforce_ordering waited this long for (default 10)",
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, wait this long for running consumers (default 10)",
    )
    parser.add_argument(
        "-v", "--verbosity", type=int, default=1, choices=(0, 1, 2), help="0 quiet, 1 info, 2 debug"
    )


def run(args: argparse.Namespace) -> int:
    from ..layers import LayerSpecError, get_channel_layer
    from ..worker import ORDERING_TIMEOUT, RoutingError, Worker
    from . import UsageError

    logging.basicConfig(
        level={0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}[args.verbosity],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    spec = args.layer or os.environ.get(LAYER_VARIABLE)
    if not spec:
        raise UsageError(
            f"no channel layer: pass --layer (e.g. redis://127.0.0.1:6379/0) or set {LAYER_VARIABLE}; "
            "a separate worker cannot share the memory:// layer of a server"
        )
    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    try:
        layer = get_channel_layer(spec)
    except LayerSpecError as exc:
        raise UsageError(str(exc)) from None
    try:
        worker = Worker(
            layer,
            args.routing,
            threads=args.threads,
            only_channels=args.only_channels,
            exclude_channels=args.exclude_channels,
            ordering_timeout=ORDERING_TIMEOUT if args.ordering_timeout is None else args.ordering_timeout,
        )
    except (RoutingError, ValueError) as exc:
        raise UsageError(str(exc)) from None

    if spec.startswith("memory:"):
        logging.getLogger("telex.worker").warning(
            "memory:// lives in this process only; no server will reach this worker (use redis://)"
        )

    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        logging.getLogger("telex.worker").info("received %s; finishing running consumers", name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    worker.start()
    # The main thread only waits: the handler runs between its waits.
    while not stop.wait(3600):
        pass
    worker.stop(args.stop_timeout)
    if worker.running:
        # Non-daemon threads would keep the process alive: leave now.
        sys.stderr.flush()
        os._exit(1)
    return 0
