"""``telex serve``: the interface server, with Daphne 1.x's flags.

This module only maps flags (and ``TELEX_*`` environment variables) onto
``ServerSettings`` and runs the server; behaviour lives in ``telex.server``.
The flags are built from the settings fields (``telex/server/settings.py``)
and from :class:`ServeCommand`; each is documented in ``docs/server.md``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._importing import failure_summary
from .._logging import LogConfigError, LogSettings, check_log_config, configure
from .._options import option
from ..supervisor import child_index, inherited_fds
from . import LayerUnreachable, StartupFailed, UsageError
from ._flags import add_options, values

if TYPE_CHECKING:
    from ..server.endpoints import SharedSockets
    from ..server.settings import ServerSettings

#: The help sections of ``telex serve``, in order: settings fields name them by key.
SECTIONS = {
    "where to listen": "where to listen",
    "TLS": "TLS (serves -b/-p with HTTPS, HTTP/2 by ALPN; see docs/tls-http2.md)",
    "application": "application",
    "HTTP": "HTTP",
    "WebSocket": "WebSocket",
    "operations": "operations",
    "logging": "logging (the same flags as telex worker)",
}


@dataclass
class ServeCommand:
    """What ``telex serve`` takes besides ``ServerSettings``: the layer, where to
    listen (made into endpoint strings), and the embedded consumers."""

    channel_layer: str | None = option(
        "LAYER",
        env="TELEX_LAYER",
        default=None,
        help="channel layer: module:attribute, memory://, redis://host:6379/0 "
        "(default: memory:// with --routing or --asgi)",
    )
    host: str | None = option(
        "-b", "--bind", group="where to listen", default=None, help="address to bind (default 127.0.0.1)"
    )
    port: int | None = option(
        "-p",
        "--port",
        kind="int",
        group="where to listen",
        default=None,
        help="TCP port to bind (default 8000)",
    )
    unix_socket: str | None = option(
        "-u", "--unix-socket", group="where to listen", default=None, help="bind a UNIX socket at this path"
    )
    file_descriptor: int | None = option(
        "--fd",
        kind="int",
        group="where to listen",
        default=None,
        help="adopt this already-bound socket descriptor",
    )
    endpoints: list[str] = option(
        "-e",
        "--endpoint",
        kind="repeat",
        group="where to listen",
        default_factory=list,
        help="Twisted endpoint string, repeatable (tcp:8000:interface=0.0.0.0, unix:/run/telex.sock, "
        "ssl:443:privateKey=key.pem:certKey=cert.pem, systemd:domain=INET:index=0)",
    )
    routing: str | None = option(
        "--routing",
        group="application",
        default=None,
        help="run consumers from this routing list (module:attribute) in-process",
    )
    threads: int = option(
        "--threads", kind="int", group="application", default=1, help="consumer threads for --routing"
    )
    asgi: str | None = option(
        "--asgi",
        group="application",
        default=None,
        metavar="APP",
        help="run this ASGI 3 application (module:attribute) in-process, on memory:// (docs/asgi3.md)",
    )
    workers: int = option(
        "--workers",
        kind="int",
        group="operations",
        default=1,
        help="run this many server processes on the same socket, restarted if they die (docs/deployment.md)",
    )
    reload: bool = option(
        "--reload",
        kind="switch",
        group="operations",
        default=False,
        help="development only: restart when a .py file under the current directory changes",
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        "serve",
        help="run the interface server",
        description=(
            "Serve HTTP and WebSocket, speaking to workers through the channel layer LAYER "
            "(module:attribute, memory://, redis://...). With --routing, consumers run in this "
            "process too (the embedded mode). Put LAYER before options that take lists."
        ),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..server.settings import ServerSettings

    add_options(parser, [ServeCommand, ServerSettings, LogSettings], SECTIONS)


def endpoint_strings(command: ServeCommand, tls_wanted: bool) -> tuple[list[str], list[str]]:
    """Twisted endpoint strings for -b/-p/-u and -e, as Daphne 1.x builds them:
    (plain endpoints, endpoints to serve with TLS from the --ssl-* files)."""
    host_and_port = re.fullmatch(r"(\[[^]]*\]|[^:]*):(\d*)", command.host or "")
    if host_and_port:  # host:port or [v6]:port; a bare IPv6 address has two colons or more
        bare_host, bare_port = host_and_port.groups()
        raise UsageError(f"-b {command.host}: give the port with -p (-b {bare_host} -p {bare_port})")
    if command.port is not None and not 0 <= command.port <= 65535:
        raise UsageError(f"-p {command.port}: a port is a number from 0 to 65535")
    endpoints = list(command.endpoints)
    tls_endpoints: list[str] = []
    if command.unix_socket:
        endpoints.append("unix:" + command.unix_socket.replace(":", r"\:"))
    if (
        command.host is not None
        or command.port is not None
        or tls_wanted
        or not (endpoints or command.file_descriptor is not None)
    ):
        host = command.host or "127.0.0.1"
        port = 8000 if command.port is None else command.port
        kind = "tcp6" if ":" in host else "tcp"
        spec = f"{kind}:port={port}:interface={host.strip('[]').replace(':', chr(92) + ':')}"
        (tls_endpoints if tls_wanted else endpoints).append(spec)
    return endpoints, tls_endpoints


def settings_from_args(args: argparse.Namespace) -> tuple[ServeCommand, ServerSettings]:
    """The command's own inputs and the ``ServerSettings`` the flags and variables make,
    checked so that a user's mistake is one line (UsageError), never a traceback."""
    from ..server.settings import ServerSettings

    command = ServeCommand(**values(ServeCommand, args))
    given = values(ServerSettings, args)
    for name in ("ssl_keyfile", "ssl_keyfile_password", "ssl_ca_certs"):
        if given[name] is not None and given["ssl_certfile"] is None:
            raise UsageError(f"--{name.replace('_', '-')} needs --ssl-certfile")
    endpoints, tls_endpoints = endpoint_strings(command, tls_wanted=given["ssl_certfile"] is not None)
    fds = [] if command.file_descriptor is None else [command.file_descriptor]
    if child_index() is not None:
        # The supervisor bound every socket in this order (``supervised_sockets``): serve on them.
        inherited = inherited_fds()
        endpoints = [f"inherited:{fd}:{spec}" for fd, spec in zip(inherited, endpoints, strict=False)]
        rest = inherited[len(endpoints) :]
        tls_endpoints = [f"inherited:{fd}:{spec}" for fd, spec in zip(rest, tls_endpoints, strict=False)]
        fds = rest[len(tls_endpoints) :]
    settings = ServerSettings(endpoints=endpoints, tls_endpoints=tls_endpoints, adopt_fds=fds, **given)
    check_settings(settings)
    if command.threads < 1:
        raise UsageError("--threads must be at least 1")
    if command.workers < 1:
        raise UsageError("--workers must be at least 1")
    if command.asgi is not None:
        check_asgi(command)
    shared_layer = command.routing is None and not (command.channel_layer or "").startswith("memory:")
    if command.workers > 1 and not shared_layer:
        raise UsageError(
            "--workers > 1 needs a layer shared between processes (redis://...), not memory:// or --routing"
        )
    return command, settings


def check_asgi(command: ServeCommand) -> None:
    """``--asgi`` runs the application in this one process, on its memory:// layer:
    what would need another process or another consumer is refused."""
    if command.routing is not None:
        raise UsageError(
            "give --routing or --asgi, not both: --asgi runs an ASGI 3 application instead of a routing list"
        )
    if command.threads != 1:
        raise UsageError("--threads does not apply to --asgi, which runs every instance on one asyncio loop")
    if command.workers > 1:
        raise UsageError(
            "--workers > 1 does not apply to --asgi, whose application and memory:// layer live in one "
            "process: for several, serve a shared layer (redis://...) and run telex worker --asgi APP"
        )
    layer = command.channel_layer
    if layer is not None and not layer.startswith("memory:"):
        raise UsageError(
            f"--asgi runs the application in this process on memory://, not on {layer}: "
            f"to run it behind a shared layer, serve {layer} without --asgi and run "
            "telex worker --asgi APP --layer LAYER"
        )


def check_settings(settings: ServerSettings) -> None:
    """What argparse cannot check of the settings' options (``manage.py runserver`` checks them too)."""
    if settings.reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise UsageError("--reuse-port: this platform has no SO_REUSEPORT")
    if settings.request_body_chunk_size < 1:
        raise UsageError("--request-body-chunk-size must be at least 1 byte")
    for flag, path in (("--health-path", settings.health_path), ("--metrics-path", settings.metrics_path)):
        if path is not None and not path.startswith("/"):
            raise UsageError(f"{flag} {path}: a path starts with / (did you mean /{path}?)")
    check_access_log(settings.access_log)


def check_access_log(path: str | None) -> None:
    """Open (and so create) the access log now: an unwritable path is a usage error, not a traceback."""
    if path is None or path == "-":
        return
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise UsageError(f"--access-log {path}: cannot write to it: {exc.strerror}") from None


def supervised_sockets(settings: ServerSettings, file_descriptor: int | None) -> SharedSockets:
    """Bind every endpoint (-b/-p, -u, -e, the TLS listener) and take --fd, for the
    children to inherit in this order (``--workers``, ``--reload``). Kept open for the
    supervisor's lifetime: children come and go, the sockets stay."""
    from twisted.internet.error import CannotListenError

    from ..server.endpoints import SharedSockets

    sockets = SharedSockets(settings.reuse_port)
    for spec in settings.endpoints + settings.tls_endpoints:
        try:
            sockets.bind(spec)
        except CannotListenError as error:
            where = error.port if error.interface is None else f"{error.interface or '*'}:{error.port}"
            raise UsageError(f"cannot listen on {where}: {error.socketError.strerror}") from None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if file_descriptor is not None:
        sockets.fds.append(os.dup(file_descriptor))
    return sockets


def check_endpoints(settings: ServerSettings) -> None:
    """Parse every endpoint string before the reactor runs (the reactor must be installed):
    a bad one is named in one line."""
    from ..server.endpoints import listening_endpoint

    for spec in settings.endpoints:
        try:
            endpoint = listening_endpoint(spec, settings.reuse_port)
        except Exception as exc:  # Twisted's parsers raise ValueError, TypeError, KeyError, ...
            raise UsageError(f"endpoint {spec!r}: {type(exc).__name__}: {exc}") from None
        port = getattr(endpoint, "_port", getattr(endpoint, "port", None))
        if isinstance(port, int) and not 0 <= port <= 65535:
            raise UsageError(f"endpoint {spec!r}: port {port} is not from 0 to 65535")


def raise_open_file_limit() -> None:
    """Ten thousand sockets should open without tuning: soft limit := hard limit."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass


def name_inherited_sockets() -> None:
    """Let Twisted's ``systemd:`` endpoint see sockets passed without names.

    Twisted ignores every inherited socket unless LISTEN_FDNAMES names each
    one; systemd >= 227 always sets it, but systemd-socket-activate (without
    --fdname) and other launchers do not. sd_listen_fds_with_names(3) calls
    such sockets "unknown"; so do we. Must run before anything imports
    twisted.internet.endpoints, which reads (and clears) LISTEN_FDS.
    """
    env = os.environ
    if env.get("LISTEN_PID") != str(os.getpid()) or "LISTEN_FDNAMES" in env:
        return
    try:
        count = int(env.get("LISTEN_FDS", ""))
    except ValueError:
        return
    env["LISTEN_FDNAMES"] = ":".join(["unknown"] * count)


def run(args: argparse.Namespace) -> int:
    from ..server.reactor import install_reactor

    name_inherited_sockets()
    # Before anything (the user's modules included) imports the reactor.
    install_reactor()
    command, settings = settings_from_args(args)
    log_settings = LogSettings(**values(LogSettings, args))
    try:
        check_log_config(log_settings.log_config)
        check_endpoints(settings)
        configure(log_settings, twisted=True)
    except LogConfigError as exc:
        raise UsageError(str(exc)) from None
    if child_index() is None and (command.workers > 1 or command.reload):
        from ..supervisor import run_supervised

        sockets = supervised_sockets(settings, command.file_descriptor)
        try:
            return run_supervised(
                args.words, command.workers, sockets.fds, command.reload, drain_signal=signal.SIGUSR2
            )
        finally:
            sockets.remove_unix_paths()  # bound by the supervisor, so removed by it
    raise_open_file_limit()
    from ..server.run import ApplicationStartupError, LayerUnreachableError, ServeError, serve

    try:
        return serve(
            settings,
            command.channel_layer,
            routing=command.routing,
            threads=command.threads,
            asgi=command.asgi,
        )
    except ApplicationStartupError as exc:
        raise StartupFailed(str(exc)) from None
    except LayerUnreachableError as exc:
        raise LayerUnreachable(failure_summary(str(exc), exc.__cause__, log_settings.verbosity)) from None
    except ServeError as exc:
        raise UsageError(failure_summary(str(exc), exc.__cause__, log_settings.verbosity)) from None
