"""``telex serve``: the interface server, with Daphne 1.x's flags.

This module only maps flags (and ``TELEX_*`` environment variables) onto
``ServerSettings`` and runs the server; behaviour lives in ``telex.server``.
Every flag is documented in ``docs/server.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import socket
import sys
from typing import Any

from . import UsageError

ENV_PREFIX = "TELEX_"


def _env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def _bool_env(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (1/0, true/false), got {value!r}")


def _list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _size(value: str) -> int:
    """Sizes in bytes, with an optional k/m/g suffix (powers of 1024)."""
    text = value.strip().lower()
    factor = 1
    if text and text[-1] in "kmg":
        factor = 1024 ** ("kmg".index(text[-1]) + 1)
        text = text[:-1]
    try:
        number = int(text) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 65536, 64k or 16m, got {value!r}"
        ) from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"a size cannot be negative: {value!r}")
    return number


def _seconds(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None


class _EnvDefaults:
    """Adds options whose default comes from ``TELEX_<FLAG>`` when set."""

    def __init__(self, parser: argparse.ArgumentParser | Any) -> None:
        self.parser = parser

    def add(self, *flags: str, env: str | None = None, **kwargs: Any) -> None:
        name = env or _env_name(next(f for f in flags if f.startswith("--")))
        raw = os.environ.get(name)
        action = kwargs.get("action")
        if raw is not None:
            if action == "store_true":
                kwargs["default"] = _bool_env(raw)
            elif action == "append":
                kwargs["default"] = raw.split()
            else:
                kwargs["default"] = raw  # argparse applies ``type`` to str defaults
        help_text = kwargs.get("help", "")
        default = kwargs.get("default")
        shown = (
            "" if default in (None, False, [], "") or "%(default)" in help_text else " (default: %(default)s)"
        )
        kwargs["help"] = f"{help_text}{shown} [env {name}]"
        self.parser.add_argument(*flags, **kwargs)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the interface server",
        description=(
            "Serve HTTP and WebSocket, speaking to workers through the channel layer LAYER "
            "(module:attribute, memory://, redis://...). With --routing, consumers run in this "
            "process too (the embedded mode). Put LAYER before options that take lists."
        ),
    )
    opt = _EnvDefaults(parser)
    parser.add_argument(
        "channel_layer",
        metavar="LAYER",
        nargs="?",
        default=os.environ.get(ENV_PREFIX + "LAYER"),
        help="channel layer: module:attribute, memory://, redis://host:6379/0 "
        "(default: memory:// with --routing) [env TELEX_LAYER]",
    )
    where = parser.add_argument_group("where to listen")
    opt.parser = where
    opt.add("-b", "--bind", dest="host", default=None, help="address to bind (default 127.0.0.1)")
    opt.add("-p", "--port", type=int, default=None, help="TCP port to bind (default 8000)")
    opt.add("-u", "--unix-socket", dest="unix_socket", default=None, help="bind a UNIX socket at this path")
    opt.add(
        "--fd",
        type=int,
        dest="file_descriptor",
        default=None,
        help="adopt this already-bound socket descriptor",
    )
    opt.add(
        "-e",
        "--endpoint",
        dest="endpoints",
        action="append",
        default=[],
        help="Twisted endpoint string, repeatable (tcp:8000:interface=0.0.0.0, unix:/run/telex.sock, "
        "ssl:443:privateKey=key.pem:certKey=cert.pem, systemd:domain=INET:index=0)",
    )
    opt.add(
        "--reuse-port",
        action="store_true",
        default=False,
        help="bind TCP listeners with SO_REUSEPORT so several Telex processes share one port",
    )
    tls = parser.add_argument_group("TLS (serves -b/-p with HTTPS, HTTP/2 by ALPN; see docs/tls-http2.md)")
    opt.parser = tls
    opt.add("--ssl-certfile", default=None, help="server certificate (PEM), chain after it; turns TLS on")
    opt.add("--ssl-keyfile", default=None, help="private key (PEM) (default: in --ssl-certfile)")
    opt.add("--ssl-keyfile-password", default=None, help="password of an encrypted --ssl-keyfile")
    opt.add(
        "--ssl-ca-certs",
        default=None,
        help="CA certificates (PEM): clients must present a certificate they signed",
    )
    app = parser.add_argument_group("application")
    opt.parser = app
    opt.add(
        "--routing", default=None, help="run consumers from this routing list (module:attribute) in-process"
    )
    opt.add("--threads", type=int, default=1, help="consumer threads for --routing")
    opt.add("--root-path", default="", help="root_path for every request, like WSGI SCRIPT_NAME")
    opt.add(
        "--force-sync",
        action="store_true",
        default=False,
        help="talk to the layer through threads with its synchronous API only (foreign layers always do)",
    )
    http = parser.add_argument_group("HTTP")
    opt.parser = http
    opt.add(
        "-t", "--http-timeout", type=_seconds, default=120.0, help="seconds to wait for a response before 503"
    )
    opt.add(
        "--keep-alive-timeout",
        type=_seconds,
        default=15.0,
        help="seconds an idle keep-alive connection stays open",
    )
    opt.add(
        "--request-head-timeout",
        type=_seconds,
        default=10.0,
        help="seconds to receive a complete request head",
    )
    opt.add("--max-headers", type=int, default=100, help="most header lines per request (400 beyond)")
    opt.add(
        "--max-header-bytes", type=_size, default=16384, help="most bytes of request line plus headers (400)"
    )
    opt.add(
        "--request-body-inline-max",
        type=_size,
        default=512 * 1024,
        help="larger bodies stream via body_channel",
    )
    opt.add(
        "--request-body-chunk-size",
        type=_size,
        default=256 * 1024,
        help="bytes per Request Body Chunk message",
    )
    opt.add(
        "--max-request-body-size",
        type=_size,
        default=0,
        help="largest request body, 413 beyond; 0 = no limit",
    )
    opt.add("--max-connections", type=int, default=0, help="most open connections, 503 beyond; 0 = no limit")
    opt.add("--max-pending-output", type=_size, default=16 * 1024 * 1024, help="bytes held for a slow reader")
    opt.add(
        "--slow-client-timeout",
        type=_seconds,
        default=30.0,
        help="seconds over --max-pending-output before closing",
    )
    opt.add(
        "--http-disconnect-always",
        action="store_true",
        default=False,
        help="send http.disconnect after every request, as Daphne 1.x did",
    )
    opt.add("--proxy-headers", action="store_true", default=False, help="use X-Forwarded-For/-Port/-Proto")
    opt.add(
        "--proxy-headers-trusted",
        type=_list,
        default=None,
        help="comma-separated addresses/networks whose proxy headers count; '*' trusts all "
        "(default: 127.0.0.1,::1)",
    )
    ws = parser.add_argument_group("WebSocket")
    opt.parser = ws
    opt.add(
        "--websocket-timeout",
        "--websocket_timeout",
        type=_seconds,
        default=None,
        help="maximum WebSocket lifetime in seconds; -1 never (default: the layer's group_expiry)",
    )
    opt.add(
        "--websocket-connect-timeout",
        "--websocket_connect_timeout",
        type=_seconds,
        default=5.0,
        help="seconds to wait for the answer to websocket.connect before 403",
    )
    opt.add(
        "--ping-interval", type=_seconds, default=20.0, help="ping idle WebSockets after this many seconds"
    )
    opt.add(
        "--ping-timeout",
        type=_seconds,
        default=30.0,
        help="close a WebSocket whose ping is unanswered this long",
    )
    opt.add(
        "--ws-protocol",
        dest="ws_protocols",
        action="append",
        default=[],
        help="subprotocol to offer; repeat it or separate with commas",
    )
    opt.add(
        "--websocket-max-message-size", type=_size, default=1024 * 1024, help="largest message (close 1009)"
    )
    opt.add("--websocket-max-frame-size", type=_size, default=1024 * 1024, help="largest frame (close 1009)")
    opt.add("--websocket-compression", action="store_true", default=False, help="offer permessage-deflate")
    opt.add(
        "--allowed-origins",
        type=_list,
        default=[],
        help="comma-separated Origin allow-list (hosts, *.example.com, or full origins); default: all",
    )
    ops = parser.add_argument_group("operations")
    opt.parser = ops
    opt.add(
        "--graceful-timeout", type=_seconds, default=30.0, help="seconds in-flight responses get at shutdown"
    )
    opt.add(
        "--gc-threshold",
        type=int,
        default=50_000,
        help="garbage collector's first threshold once listening (start-up heap frozen); 0 = Python's",
    )
    opt.add(
        "--layer-check-interval",
        type=_seconds,
        default=5.0,
        help="seconds between checks that the layer kept its data (Redis), and reply-lag refreshes",
    )
    opt.add("--health-path", default=None, help="path answered by the server itself with layer health")
    opt.add("--metrics-path", default=None, help="path serving Prometheus metrics")
    opt.add("--access-log", default=None, help="access log file, or - for stdout")
    opt.add("--access-log-format", choices=("combined", "json"), default="combined", help="access log format")
    opt.add("-v", "--verbosity", type=int, default=1, help="0 errors, 1 info, 2 debug and tracebacks, 3 all")


def endpoints_from_args(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Twisted endpoint strings for -b/-p/-u and -e, as Daphne 1.x builds them:
    (plain endpoints, endpoints to serve with TLS from the --ssl-* files)."""
    endpoints = list(args.endpoints)
    tls_endpoints: list[str] = []
    if args.unix_socket:
        endpoints.append("unix:" + args.unix_socket.replace(":", r"\:"))
    tls_wanted = args.ssl_certfile is not None
    if (
        args.host is not None
        or args.port is not None
        or tls_wanted
        or not (endpoints or args.file_descriptor is not None)
    ):
        host = args.host or "127.0.0.1"
        port = 8000 if args.port is None else args.port
        kind = "tcp6" if ":" in host else "tcp"
        spec = f"{kind}:port={port}:interface={host.strip('[]').replace(':', chr(92) + ':')}"
        (tls_endpoints if tls_wanted else endpoints).append(spec)
    return endpoints, tls_endpoints


def settings_from_args(args: argparse.Namespace) -> Any:
    from ..server.settings import ServerSettings

    protocols = [p for value in args.ws_protocols for p in _list(value)]
    for flag in ("ssl_keyfile", "ssl_keyfile_password", "ssl_ca_certs"):
        if getattr(args, flag) is not None and args.ssl_certfile is None:
            raise UsageError(f"--{flag.replace('_', '-')} needs --ssl-certfile")
    endpoints, tls_endpoints = endpoints_from_args(args)
    settings = ServerSettings(
        endpoints=endpoints,
        tls_endpoints=tls_endpoints,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        ssl_keyfile_password=args.ssl_keyfile_password,
        ssl_ca_certs=args.ssl_ca_certs,
        adopt_fds=[] if args.file_descriptor is None else [args.file_descriptor],
        reuse_port=args.reuse_port,
        root_path=args.root_path,
        proxy_headers=args.proxy_headers,
        http_timeout=args.http_timeout,
        request_body_inline_max=args.request_body_inline_max,
        request_body_chunk_size=args.request_body_chunk_size,
        max_request_body_size=args.max_request_body_size,
        keep_alive_timeout=args.keep_alive_timeout,
        request_head_timeout=args.request_head_timeout,
        max_headers=args.max_headers,
        max_header_bytes=args.max_header_bytes,
        max_connections=args.max_connections,
        max_pending_output=args.max_pending_output,
        slow_client_timeout=args.slow_client_timeout,
        http_disconnect_always=args.http_disconnect_always,
        ws_protocols=protocols,
        websocket_connect_timeout=args.websocket_connect_timeout,
        websocket_timeout=args.websocket_timeout,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        websocket_max_message_size=args.websocket_max_message_size,
        websocket_max_frame_size=args.websocket_max_frame_size,
        websocket_compression=args.websocket_compression,
        allowed_origins=args.allowed_origins,
        graceful_timeout=args.graceful_timeout,
        layer_check_interval=args.layer_check_interval,
        gc_threshold=args.gc_threshold,
        health_path=args.health_path,
        metrics_path=args.metrics_path,
        access_log=args.access_log,
        access_log_format=args.access_log_format,
        verbosity=args.verbosity,
    )
    if args.proxy_headers_trusted is not None:
        settings.proxy_headers_trusted = args.proxy_headers_trusted
    if args.reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise UsageError("--reuse-port: this platform has no SO_REUSEPORT")
    if settings.request_body_chunk_size < 1:
        raise UsageError("--request-body-chunk-size must be at least 1 byte")
    if args.threads < 1:
        raise UsageError("--threads must be at least 1")
    return settings


def configure_logging(verbosity: int) -> None:
    level = {0: logging.ERROR, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s %(message)s", stream=sys.stderr, force=True
    )
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    # Twisted's own log goes through Python logging, under the "twisted" name.
    globalLogBeginner.beginLoggingTo(
        [STDLibLogObserver(name="twisted")],  # type: ignore[list-item]  # a zope @implementer
        redirectStandardIO=False,
    )
    if verbosity < 3:
        logging.getLogger("twisted").setLevel(max(level, logging.INFO))


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
    settings = settings_from_args(args)
    configure_logging(settings.verbosity)
    raise_open_file_limit()
    from ..server.run import ServeError, serve

    try:
        return serve(
            settings,
            args.channel_layer,
            routing=args.routing,
            threads=args.threads,
            force_sync=args.force_sync,
        )
    except ServeError as exc:
        if settings.verbosity >= 2 and exc.__cause__ is not None:
            logging.getLogger("telex.server").exception("start-up failed", exc_info=exc.__cause__)
        raise UsageError(str(exc)) from None
