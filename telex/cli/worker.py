"""``telex worker ROUTING --layer LAYER``: run consumers in the foreground.

Runs until SIGTERM or SIGINT, then stops receiving, lets the running
consumers finish and exits 0 (1 if some were still running after
``--stop-timeout``). The flags are built from ``telex.worker.settings``;
flags and behaviour: ``docs/worker.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from ..supervisor import child_index, supervisor_gone
from . import LayerUnreachable, UsageError
from ._flags import add_options, values


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        "worker",
        help="run consumers for the channels a routing list names",
        description="Run the consumers of a routing list against a channel layer, until SIGTERM/SIGINT.",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..worker.settings import WorkerSettings

    add_options(parser, [WorkerSettings], {})


def run(args: argparse.Namespace) -> int:
    from ..layers import LayerSpecError, get_channel_layer, unreachable
    from ..worker import RoutingError, Worker
    from ..worker.settings import WorkerSettings

    settings = WorkerSettings(**values(WorkerSettings, args))
    logging.basicConfig(
        level={0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}[settings.verbosity],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    spec = settings.layer
    if not spec:
        raise UsageError(
            "no channel layer: pass --layer (e.g. redis://127.0.0.1:6379/0) or set TELEX_LAYER; "
            "a separate worker cannot share the memory:// layer of a server"
        )
    if settings.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {settings.threads}")
    if settings.processes < 1:
        raise UsageError(f"--processes must be at least 1, got {settings.processes}")
    if settings.processes > 1 and spec.startswith("memory:"):
        raise UsageError(
            "--processes > 1 needs a layer shared between processes (redis://...), not memory://"
        )
    if child_index() is None and (settings.processes > 1 or settings.reload):
        from ..supervisor import run_supervised

        return run_supervised(args.words, settings.processes, [], settings.reload, settings.verbosity)
    try:
        layer = get_channel_layer(spec)
    except LayerSpecError as exc:
        raise UsageError(str(exc)) from None
    try:
        worker = Worker(
            layer,
            settings.routing,
            threads=settings.threads,
            only_channels=settings.only_channels,
            exclude_channels=settings.exclude_channels,
            ordering_timeout=settings.ordering_timeout,
            outage_summary_interval=settings.outage_summary_interval,
        )
    except (RoutingError, ValueError) as exc:
        raise UsageError(str(exc)) from None

    problem = unreachable(layer)
    if problem is not None:
        raise LayerUnreachable(problem)
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
    # The main thread only waits: the handler runs between its waits. A
    # supervised worker also looks once a second whether its supervisor died.
    supervised = child_index() is not None
    while not stop.wait(1.0 if supervised else 3600):
        if supervised and supervisor_gone():
            logging.getLogger("telex.worker").warning("the supervisor is gone; stopping")
            break
    worker.stop(settings.stop_timeout)
    if worker.running:
        # Non-daemon threads would keep the process alive: leave now.
        sys.stderr.flush()
        os._exit(1)
    return 0
