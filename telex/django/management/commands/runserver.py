"""``manage.py runserver``: Telex and consumer threads in one process, for development.

Django's runserver with Telex in place of its WSGI server: HTTP and
WebSocket on one port, the project's consumers on worker threads (unless
``--noworker``: then run ``manage.py runworker`` against a cross-process
layer), static files under ``DEBUG`` as staticfiles' runserver serves them,
and Django's autoreloader (unless ``--noreload``). ``--noasgi`` runs
Django's own runserver instead. Its Telex options are ``telex serve``'s,
from the same settings fields, except those runserver sets itself
(``SET_HERE``) and the listener (``addrport``). Options and defaults:
``docs/django.md``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from datetime import datetime
from typing import Any, NoReturn

from django.conf import settings
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.management.base import CommandError, CommandParser
from django.core.management.commands.runserver import Command as RunserverCommand
from django.db import connections
from django.utils import autoreload

from ... import DEFAULT_CHANNEL_LAYER
from ...asgi import InvalidChannelLayerError, channel_layers
from .. import CommandWorker, check_reachable, http_consumer, serve_static, setup_logging

#: Seconds in-flight responses and running consumers get when the server stops
#: (Ctrl-C, or a reload): a development server should restart at once.
STOP_TIMEOUT = 5.0

#: ServerSettings fields runserver sets itself: from Django's settings (``FORCE_SCRIPT_NAME``,
#: ``CHANNELS_WS_PROTOCOLS``), from ``-v`` (the access log), its stop timeout, and Channels
#: 1.x's own ``--http_timeout`` (60 s) and ``--websocket_handshake_timeout``.
SET_HERE = frozenset(
    {
        "root_path",
        "ws_protocols",
        "access_log",
        "graceful_timeout",
        "http_timeout",
        "websocket_connect_timeout",
    }
)
#: The help sections of the ServerSettings options runserver takes; where to listen is
#: ``addrport``, and TLS is for ``telex serve``.
SECTIONS = {
    "application": "Telex: application",
    "HTTP": "Telex: HTTP",
    "WebSocket": "Telex: WebSocket",
    "operations": "Telex: operations",
}


def telex_options() -> list[str]:
    """The ServerSettings fields that are runserver options."""
    from ....cli._flags import settings_fields
    from ....server.settings import ServerSettings

    return [
        settings_field.name
        for settings_field, declared in settings_fields(ServerSettings)
        if declared.group in SECTIONS and settings_field.name not in SET_HERE
    ]


class Command(RunserverCommand):
    help = (
        "Starts Telex (HTTP and WebSocket) for development, with consumer threads, "
        "static files and the autoreloader."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        # staticfiles' runserver options: this command takes its place.
        parser.add_argument(
            "--nostatic",
            action="store_false",
            dest="use_static_handler",
            help="Do not serve static files at STATIC_URL.",
        )
        parser.add_argument(
            "--insecure",
            action="store_true",
            dest="insecure_serving",
            help="Serve static files even if DEBUG is False.",
        )
        parser.add_argument(
            "--noworker",
            action="store_false",
            dest="run_worker",
            help="Run no consumer threads; run 'manage.py runworker' separately (cross-process layer).",
        )
        parser.add_argument(
            "--noasgi",
            action="store_false",
            dest="use_asgi",
            help="Run Django's own WSGI runserver instead of Telex.",
        )
        parser.add_argument(
            "--http_timeout",
            "--http-timeout",
            type=float,
            default=60.0,
            dest="http_timeout",
            help="Seconds to wait for a response before answering 503 (default: %(default)s).",
        )
        parser.add_argument(
            "--websocket_handshake_timeout",
            "--websocket-handshake-timeout",
            type=float,
            default=5.0,
            dest="websocket_handshake_timeout",
            help="Seconds to wait for the answer to websocket.connect (default: %(default)s).",
        )
        from ....cli._flags import add_options
        from ....server.settings import ServerSettings

        # The rest are telex serve's options, declared once in ServerSettings: the same
        # flags, defaults and TELEX_* variables.
        add_options(parser, [ServerSettings], SECTIONS, only=telex_options(), hand_on=False)

    def get_handler(self, *args: Any, **options: Any) -> Any:
        """The WSGI handler of ``--noasgi``, with static files as staticfiles' runserver has them."""
        handler = super().get_handler(*args, **options)
        if serve_static(options["use_static_handler"], options["insecure_serving"]):
            return StaticFilesHandler(handler)
        return handler

    def inner_run(self, *args: Any, **options: Any) -> None:
        if not options["use_asgi"]:
            super().inner_run(*args, **options)
            return
        # An error the parent process hid for the reloader's sake surfaces here.
        autoreload.raise_last_exception()
        from ....server.reactor import ReactorAlreadyInstalled, install_reactor

        try:
            # Before the project's consumers import anything from Twisted.
            install_reactor()
        except ReactorAlreadyInstalled as exc:
            self._fail(str(exc))
        setup_logging(options["verbosity"])
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            self.check(display_num_errors=True)
        self.check_migrations()
        for connection in connections.all(initialized_only=True):
            connection.close()

        try:
            wrapper = channel_layers[DEFAULT_CHANNEL_LAYER]
            check_reachable(wrapper)
        except (InvalidChannelLayerError, CommandError) as exc:
            self._fail(str(exc))
        worker = None
        if options["run_worker"]:
            use_static = serve_static(options["use_static_handler"], options["insecure_serving"])
            try:
                worker = CommandWorker(
                    wrapper,
                    threads=4 if options["use_threading"] else 1,
                    http_consumer=http_consumer(use_static),
                )
            except ValueError as exc:  # RoutingError too
                self._fail(f"CHANNEL_LAYERS[{DEFAULT_CHANNEL_LAYER!r}]['ROUTING']: {exc}")
        elif wrapper.local_only():
            self.stderr.write(
                self.style.WARNING(
                    "--noworker with the in-memory layer: no other process can consume its messages; "
                    "set CHANNEL_LAYERS['default']['BACKEND'] to a cross-process layer"
                )
            )
        self._print_banner(wrapper, worker)
        self._serve(wrapper, worker, options)

    def _serve(self, wrapper: Any, worker: CommandWorker | None, options: dict[str, Any]) -> None:
        from ....cli import UsageError
        from ....cli.serve import check_settings
        from ....server.run import ServeError, serve
        from ....server.settings import ServerSettings

        host = "0.0.0.0" if self.addr == "0" else self.addr
        kind = "tcp6" if self.use_ipv6 or ":" in host else "tcp"
        escaped = host.replace(":", "\\:")
        server_settings = ServerSettings(
            **{name: options[name] for name in telex_options()},
            endpoints=[f"{kind}:port={int(self.port)}:interface={escaped}"],
            root_path=getattr(settings, "FORCE_SCRIPT_NAME", None) or "",
            http_timeout=options["http_timeout"],
            websocket_connect_timeout=options["websocket_handshake_timeout"],
            ws_protocols=list(getattr(settings, "CHANNELS_WS_PROTOCOLS", None) or []),
            graceful_timeout=STOP_TIMEOUT,
            access_log="-" if options["verbosity"] >= 1 else None,
        )
        try:
            check_settings(server_settings)
        except UsageError as exc:
            self._fail(str(exc))
        _log_twisted(options["verbosity"])
        # Under the autoreloader this runs on a thread: the reloader owns the
        # signals and ends the process with sys.exit (3 to reload).
        main_thread = threading.current_thread() is threading.main_thread()
        finished = threading.Event()
        if not main_thread:
            threading._register_atexit(lambda: self._stop_at_exit(finished))  # type: ignore[attr-defined]
        if worker is not None:
            worker.start()
        try:
            serve(server_settings, wrapper.channel_layer, signal_handlers=main_thread)
        except ServeError as exc:
            error: str | None = str(exc)
        else:
            error = None
        finally:
            if worker is not None:
                worker.stop(STOP_TIMEOUT)
            finished.set()
        if error is not None:
            self._fail(error)
        shutdown_message = options.get("shutdown_message", "")
        if shutdown_message:
            self.stdout.write(shutdown_message)

    @staticmethod
    def _stop_at_exit(finished: threading.Event) -> None:
        """Stop the server and the worker before Python joins the worker's threads at exit."""
        from twisted.internet import reactor

        def stop() -> None:
            if reactor.running:
                reactor.stop()

        if not finished.is_set():
            reactor.callFromThread(stop)
            finished.wait(3 * STOP_TIMEOUT)

    def _print_banner(self, wrapper: Any, worker: CommandWorker | None) -> None:
        if self._raw_ipv6:
            address = f"[{self.addr}]"
        elif self.addr == "0":
            address = "0.0.0.0"
        else:
            address = self.addr
        quit_command = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        threads = f"{worker.threads} worker thread(s)" if worker is not None else "no worker (--noworker)"
        self.stdout.write(
            f"{datetime.now().strftime('%B %d, %Y - %X')}\n"
            f"Django version {self.get_version()}, using settings {settings.SETTINGS_MODULE!r}\n"
            f"Starting Telex development server at {self.protocol}://{address}:{self.port}/\n"
            f"Channel layer {wrapper}, {threads}\n"
            f"Quit the server with {quit_command}."
        )

    def _fail(self, message: str) -> NoReturn:
        """One line and exit 1; ``os._exit`` because this may run on the autoreloader's thread."""
        self.stderr.write(f"Error: {message}")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def _log_twisted(verbosity: int) -> None:
    """Twisted's own log (unhandled errors, mostly) into the ``telex.twisted`` logger, as telex serve."""
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    globalLogBeginner.beginLoggingTo(
        [STDLibLogObserver(name="telex.twisted")],  # type: ignore[list-item]  # a zope @implementer
        redirectStandardIO=False,
    )
    if verbosity < 3:
        logging.getLogger("telex.twisted").setLevel(logging.WARNING)
