"""``manage.py runworker``: run the project's consumers, in the foreground, until SIGTERM/SIGINT.

The worker of Channels 1.x's ``runworker``, on a cross-process layer
(Redis): servers (``telex serve``, or ``runserver --noworker``) put the
messages on the layer, any number of these processes consume them. On
SIGTERM or SIGINT it stops receiving, lets running consumers finish for up
to ``--stop-timeout`` seconds and exits 0 (1 if some were still running).
Its options are ``telex worker``'s, from the same settings fields, except
``--layer`` (a ``CHANNEL_LAYERS`` alias here) and ``-v`` (Django's).
Options and defaults: ``docs/django.md``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import DEFAULT_CHANNEL_LAYER
from .. import CommandWorker, cross_process_layer, http_consumer, serve_static, setup_logging

logger = logging.getLogger("telex.worker")

#: The WorkerSettings fields this command takes as they are.
WORKER_OPTIONS = ("threads", "only_channels", "exclude_channels", "ordering_timeout", "stop_timeout")


class Command(BaseCommand):
    help = "Runs the consumers of a channel layer's ROUTING until SIGTERM or SIGINT."

    def add_arguments(self, parser: CommandParser) -> None:
        from ....cli._flags import add_options
        from ....cli.worker import ENV_PREFIX
        from ....worker.settings import WorkerSettings

        # Channels 1.x's flag: here an alias of CHANNEL_LAYERS, where telex worker's --layer is a URL.
        parser.add_argument(
            "--layer",
            default=DEFAULT_CHANNEL_LAYER,
            help="the CHANNEL_LAYERS alias to consume from (default: %(default)s)",
        )
        # The rest are telex worker's options, declared once in WorkerSettings: the
        # same flags, defaults and TELEX_WORKER_* variables. The routing comes from
        # the alias, the layer above, and -v is Django's own (0-3, as telex worker's).
        add_options(parser, [WorkerSettings], {}, env_prefix=ENV_PREFIX, only=WORKER_OPTIONS, hand_on=False)

    def handle(self, *args: Any, **options: Any) -> None:
        setup_logging(options["verbosity"])
        alias = options["layer"]
        if options["threads"] < 1:
            raise CommandError(f"--threads must be at least 1, got {options['threads']}")
        wrapper = cross_process_layer(alias)
        try:
            # Channels 1.x served static files from its workers too, under DEBUG.
            worker = CommandWorker(
                wrapper,
                threads=options["threads"],
                only_channels=options["only_channels"],
                exclude_channels=options["exclude_channels"],
                ordering_timeout=options["ordering_timeout"],
                http_consumer=http_consumer(serve_static()),
            )
        except ValueError as exc:  # RoutingError too: the routing and the channel globs leave nothing
            raise CommandError(f"CHANNEL_LAYERS[{alias!r}]['ROUTING']: {exc}") from None

        stop = threading.Event()

        def request_stop(signum: int, frame: object) -> None:
            logger.info("received %s; finishing running consumers", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        logger.info("running worker against channel layer %s", wrapper)
        worker.start()
        # The main thread only waits, so the signal handler runs between its waits.
        while not stop.wait(3600):
            pass
        worker.stop(options["stop_timeout"])
        if worker.running:
            # Its non-daemon threads would keep the process alive: leave now.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
