"""Every option of ``telex worker``, its default and its meaning, in one place.

``telex worker`` builds its flags from these fields (``telex._options``); the
worker itself takes them as arguments of :class:`telex.worker.Worker`.
Each is documented in ``docs/worker.md`` (a test checks it). Every option
has a variable, ``TELEX_WORKER_<FLAG>`` (``telex worker`` reads its variables
under that prefix), except the layer's ``TELEX_LAYER``, which means the same
to both commands: workers often share an environment with ``telex serve``,
whose ``TELEX_THREADS`` or ``TELEX_VERBOSITY`` must not quietly change them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._options import option
from .ordering import ORDERING_TIMEOUT


@dataclass
class WorkerSettings:
    #: The routing list, as ``module:attribute``; None with ``--asgi``.
    routing: str | None = option(
        "ROUTING",
        env="TELEX_WORKER_ROUTING",
        default=None,
        help="the routing list, as module:attribute (not with --asgi)",
    )
    #: An ASGI 3 application to run instead of a routing list (docs/asgi3.md).
    asgi: str | None = option(
        "--asgi",
        default=None,
        metavar="APP",
        help="run this ASGI 3 application (module:attribute) as the consumer, instead of ROUTING",
    )
    #: With --asgi: close this process's WebSockets (1012) when it stops instead of
    #: handing them to another worker (docs/asgi3.md, Resuming).
    no_resume: bool = option(
        "--no-resume",
        kind="switch",
        default=False,
        help="with --asgi: close WebSockets with 1012 on stop instead of resuming them on another worker",
    )
    #: The channel layer; a worker has no useful default (it cannot share a
    #: server's memory:// layer).
    layer: str | None = option(
        "--layer",
        env="TELEX_LAYER",
        default=None,
        help="channel layer: redis://host:6379/0, module:attribute, ...",
    )
    #: Consumer threads in this process; each runs one consumer at a time.
    threads: int = option("--threads", kind="int", default=1, help="consumer threads in this process")
    #: Listen only on routed channels matching one of these globs (fnmatch).
    only_channels: list[str] | None = option(
        "--only-channels",
        kind="several",
        default=None,
        metavar="GLOB",
        help="listen only on routed channels matching one of these globs",
    )
    #: Do not listen on routed channels matching one of these globs.
    exclude_channels: list[str] | None = option(
        "--exclude-channels",
        kind="several",
        default=None,
        metavar="GLOB",
        help="do not listen on routed channels matching one of these globs",
    )
    #: Seconds ``enforce_ordering`` waits for a missing message before skipping it.
    ordering_timeout: float = option(
        "--ordering-timeout",
        kind="seconds",
        default=ORDERING_TIMEOUT,
        metavar="SECONDS",
        help="skip a message enforce_ordering waited this long for",
    )
    #: Seconds running consumers get to finish after SIGTERM/SIGINT.
    stop_timeout: float = option(
        "--stop-timeout",
        kind="seconds",
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, wait this long for running consumers",
    )
    #: Serve ``/metrics`` (Prometheus) and ``/health`` on this port; None: off.
    metrics_port: int | None = option(
        "--metrics-port",
        kind="int",
        default=None,
        metavar="PORT",
        help="serve /metrics (Prometheus) and /health on this port",
    )
    #: The address ``--metrics-port`` listens on.
    metrics_host: str = option(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address for --metrics-port",
    )
    #: Seconds between two summaries while the channel layer is unavailable (docs/deployment.md).
    outage_summary_interval: float = option(
        "--outage-summary-interval",
        kind="seconds",
        default=60.0,
        metavar="SECONDS",
        help="while the channel layer is unavailable, log a summary with counts this often",
    )
    #: Worker processes run and restarted by one supervisor process.
    processes: int = option(
        "--processes",
        kind="int",
        default=1,
        help="run this many worker processes, restarted if they die",
    )
    #: Development only: restart on a change to a .py file under the current directory.
    reload: bool = option(
        "--reload",
        kind="switch",
        default=False,
        help="development only: restart when a .py file under the current directory changes",
    )
