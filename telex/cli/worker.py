"""``telex worker ROUTING --layer LAYER``: run consumers in the foreground.

Runs until SIGTERM or SIGINT, then stops receiving, lets the running
consumers finish and exits 0 (1 if some were still running after
``--stop-timeout``). The flags are built from ``telex.worker.settings`` and
``telex._logging``; variables are ``TELEX_WORKER_<FLAG>`` (and ``TELEX_LAYER``);
flags and behaviour: ``docs/worker.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import socket
import sys
import threading
from collections.abc import Iterator

from .._importing import failure_summary
from .._logging import LogConfigError, LogSettings, check_log_config, configure
from ..supervisor import child_index, inherited_fds, supervisor_gone
from . import LayerUnreachable, StartupFailed, UsageError
from ._flags import add_options, values

#: The worker's variables: ``TELEX_WORKER_THREADS``, not serve's ``TELEX_THREADS``.
ENV_PREFIX = "TELEX_WORKER_"
SECTIONS = {"logging": "logging (the same flags as telex serve)"}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        "worker",
        help="run consumers for the channels a routing list names",
        description="Run the consumers of a routing list against a channel layer, until SIGTERM/SIGINT.",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..worker.settings import WorkerSettings

    add_options(parser, [WorkerSettings, LogSettings], SECTIONS, env_prefix=ENV_PREFIX)


def metrics_socket(host: str, port: int) -> int:
    """Bind ``--metrics-port`` once for every supervised process (``--processes``,
    ``--reload``): a scrape goes to whichever child accepts it."""
    try:
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        raise UsageError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    return sock.detach()


@contextlib.contextmanager
def _signal_wakeup() -> Iterator[socket.socket]:
    """A socket that becomes readable when a signal arrives, whichever thread the
    kernel delivers it to. Python runs handlers in the main thread only, and one
    waiting in a lock is not woken by a signal another thread took (seen with
    the threads of ``--asgi`` and ``--metrics-port``: SIGTERM went unanswered)."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    try:
        yield reader
    finally:
        signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()


def run(args: argparse.Namespace) -> int:
    from ..layers import LayerSpecError, get_channel_layer, unreachable
    from ..worker import RoutingError, Worker
    from ..worker.asgi3 import Asgi3Worker, LifespanFailed
    from ..worker.settings import WorkerSettings

    settings = WorkerSettings(**values(WorkerSettings, args))
    log_settings = LogSettings(**values(LogSettings, args))
    try:
        check_log_config(log_settings.log_config)
        configure(log_settings)
    except LogConfigError as exc:
        raise UsageError(str(exc)) from None
    spec = settings.layer
    if not spec:
        raise UsageError(
            "no channel layer: pass --layer (e.g. redis://127.0.0.1:6379/0) or set TELEX_LAYER; "
            "a separate worker cannot share the memory:// layer of a server"
        )
    if settings.asgi is not None:
        if settings.routing is not None:
            raise UsageError(
                "give ROUTING or --asgi, not both: --asgi runs an ASGI 3 application "
                "instead of a routing list"
            )
        for given, flag in (
            (settings.threads != 1, "--threads"),
            (settings.only_channels, "--only-channels"),
            (settings.exclude_channels, "--exclude-channels"),
        ):
            if given:
                raise UsageError(
                    f"{flag} does not apply to --asgi, which runs every instance on one asyncio loop"
                )
    elif settings.routing is None:
        raise UsageError(
            "no routing: pass ROUTING (module:attribute) or --asgi APP, or set TELEX_WORKER_ROUTING"
        )
    elif settings.no_resume:
        raise UsageError("--no-resume applies to --asgi only: a routing list's sockets stay in the server")
    if settings.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {settings.threads}")
    if settings.processes < 1:
        raise UsageError(f"--processes must be at least 1, got {settings.processes}")
    if settings.processes > 1 and spec.startswith("memory:"):
        raise UsageError(
            "--processes > 1 needs a layer shared between processes (redis://...), not memory://"
        )
    if settings.metrics_port is not None and not 0 <= settings.metrics_port <= 65535:
        raise UsageError(f"--metrics-port must be a port number (0-65535), got {settings.metrics_port}")
    if child_index() is None and (settings.processes > 1 or settings.reload):
        from ..supervisor import run_supervised

        fds = (
            []
            if settings.metrics_port is None
            else [metrics_socket(settings.metrics_host, settings.metrics_port)]
        )
        return run_supervised(args.words, settings.processes, fds, settings.reload)
    try:
        layer = get_channel_layer(spec)
    except LayerSpecError as exc:
        raise UsageError(failure_summary(str(exc), exc, log_settings.verbosity)) from None
    except ConnectionError as exc:  # a Redis Cluster's slot map is read when the layer is made
        raise LayerUnreachable(f"channel layer unreachable: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # the user's module failed while importing
        message = f"could not load channel layer {spec!r}: {type(exc).__name__}: {exc}"
        raise UsageError(failure_summary(message, exc, log_settings.verbosity)) from None
    worker: Worker | Asgi3Worker
    try:
        if settings.asgi is not None:
            worker = Asgi3Worker(layer, settings.asgi, resume=not settings.no_resume)
        else:
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
        raise UsageError(failure_summary(str(exc), exc, log_settings.verbosity)) from None
    except Exception as exc:  # the user's module failed while importing
        what = (
            f"ASGI application {settings.asgi!r}"
            if settings.asgi is not None
            else f"routing {settings.routing!r}"
        )
        message = f"could not load {what}: {type(exc).__name__}: {exc}"
        raise UsageError(failure_summary(message, exc, log_settings.verbosity)) from None

    problem = unreachable(layer)
    if problem is not None:
        raise LayerUnreachable(problem)
    metrics_server = None
    if settings.metrics_port is not None:
        from ..worker.metrics import MetricsServer

        try:
            # Supervised, the supervisor bound the port (``metrics_socket``).
            inherited = inherited_fds()[0] if child_index() is not None else None
            metrics_server = MetricsServer(worker, settings.metrics_host, settings.metrics_port, inherited)
        except OSError as exc:
            where = f"{settings.metrics_host}:{settings.metrics_port}"
            raise UsageError(f"cannot serve metrics on {where}: {exc.strerror or exc}") from None

    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        logging.getLogger("telex.worker").info("received %s; finishing running consumers", name)
        stop.set()

    # Before the first line it logs: a supervisor that signals once it sees output stops it cleanly.
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if spec.startswith("memory:"):
        logging.getLogger("telex.worker").warning(
            "memory:// lives in this process only; no server will reach this worker (use redis://)"
        )
    try:
        worker.start()
    except LifespanFailed as exc:
        raise StartupFailed(f"the application's lifespan startup failed: {exc}") from None
    if metrics_server is not None:
        metrics_server.start()
        where = f"http://{settings.metrics_host}:{metrics_server.port}"
        logging.getLogger("telex.worker").info("metrics on %s/metrics, health on %s/health", where, where)
    if settings.asgi is not None:
        logging.getLogger("telex.worker").info(
            "worker running ASGI 3 application %s; press Ctrl+C (or send SIGTERM) to stop", settings.asgi
        )
    else:
        logging.getLogger("telex.worker").info(
            "worker running %s on %d thread(s); press Ctrl+C (or send SIGTERM) to stop",
            settings.routing,
            settings.threads,
        )
    # The main thread only waits: the handler runs between its waits. A
    # supervised worker also looks once a second whether its supervisor died.
    supervised = child_index() is not None
    with _signal_wakeup() as woken:
        while not stop.is_set():
            select.select([woken], [], [], 1.0 if supervised else 3600)
            with contextlib.suppress(BlockingIOError):
                woken.recv(64)
            if supervised and supervisor_gone():
                logging.getLogger("telex.worker").warning("the supervisor is gone; stopping")
                break
    worker.stop(settings.stop_timeout)
    if metrics_server is not None:
        metrics_server.stop()
    if worker.running:
        # Non-daemon threads would keep the process alive: leave now.
        sys.stderr.flush()
        os._exit(1)
    return 0
