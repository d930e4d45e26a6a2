"""A worker's metrics and health, served over HTTP by the standard library.

``telex worker --metrics-port`` serves ``/metrics`` (Prometheus text format)
and ``/health`` from ``http.server`` on a daemon thread: a worker loads no
server code, so no Twisted here. Consumer threads count into one
:class:`WorkerMetrics` under its lock. Under ``--processes N`` the children
serve one socket their supervisor bound, and answer for all
(``telex._process_group``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .._metrics import Registry
from .._process_group import READY, WRITE_INTERVAL, ProcessGroup, group_from_environment, group_health
from ..layers import unreachable
from ..layers.base import LOSS_METRICS_HELP

logger = logging.getLogger("telex.worker")

HELP = {
    "telex_worker_messages_total": ("counter", "Messages consumed, by channel."),
    "telex_worker_consumer_duration_seconds": (
        "histogram",
        "Time from receiving a message to its held sends flushed, by channel.",
    ),
    "telex_worker_consumer_exceptions_total": ("counter", "Consumers that raised, by channel."),
    "telex_worker_send_retries_total": ("counter", "Held sends retried because their channel was full."),
    "telex_worker_sends_dropped_total": (
        "counter",
        "Held sends dropped: their channel stayed full for the whole retry time.",
    ),
    "telex_worker_ordering_skips_total": (
        "counter",
        "Gaps enforce_ordering skipped after waiting the ordering timeout for a missing message.",
    ),
    "telex_worker_busy_threads": ("gauge", "Consumer threads running a consumer now."),
    **LOSS_METRICS_HELP,
}

#: Seconds the health check waits for the layer before reporting it unreachable.
HEALTH_CHECK_TIMEOUT = 2.0


class WorkerMetrics:
    """What a worker counts; every change and every scrape under one lock."""

    def __init__(self) -> None:
        self.registry = Registry(HELP)
        self.lock = threading.Lock()
        self.busy = 0
        self.registry.gauges["telex_worker_busy_threads"] = lambda: self.busy

    def started(self) -> None:
        with self.lock:
            self.busy += 1

    def consumed(self, channel: str, seconds: float, failed: bool) -> None:
        with self.lock:
            self.busy -= 1
            self.registry.count("telex_worker_messages_total", channel=channel)
            durations = self.registry.histogram("telex_worker_consumer_duration_seconds", channel=channel)
            durations.observe(seconds)
            if failed:
                self.registry.count("telex_worker_consumer_exceptions_total", channel=channel)

    def count(self, name: str, amount: float = 1) -> None:
        with self.lock:
            self.registry.count(name, amount)

    def render(self) -> bytes:
        with self.lock:
            return self.registry.render()


def health(worker: Any) -> tuple[int, dict[str, str]]:
    """Every consumer thread alive, and the layer answering a non-blocking
    receive within ``HEALTH_CHECK_TIMEOUT`` (in its own thread: a layer in an
    outage may block)."""
    if worker.stopping or not worker.running:
        return 503, {"status": "stopping"}
    if not worker.consumers_alive():
        return 503, {"status": "down", "threads": "a consumer thread died"}
    answered = threading.Event()

    def check() -> None:
        reason = unreachable(worker.channel_layer)
        if reason is not None:
            logger.debug("health check: %s", reason)
            return
        answered.set()

    threading.Thread(target=check, name="telex-worker-health", daemon=True).start()
    if not answered.wait(HEALTH_CHECK_TIMEOUT):
        return 503, {"status": "down", "layer": "unreachable"}
    return 200, {"status": "ok", "layer": "ok"}


def health_state(status: int, body: dict[str, str]) -> str:
    """A ``health`` answer in one word, for the other processes of a group."""
    if status == 200:
        return READY
    if body.get("layer") == "unreachable":
        return "layer unreachable"
    if "threads" in body:
        return "consumer thread died"
    return body["status"]


class MetricsServer:
    """``/metrics`` and ``/health`` of ``worker`` on ``host:port``, from a daemon thread;
    or, with ``inherited_fd``, on a socket a supervisor bound (``--processes``): then
    both paths answer for every process of the group."""

    def __init__(self, worker: Any, host: str, port: int, inherited_fd: int | None = None) -> None:
        group = None
        if inherited_fd is not None:
            group = group_from_environment(worker.metrics.render, lambda: self._state)
        handler = type("Handler", (_Handler,), {"worker": worker, "group": group})
        if inherited_fd is None:
            self.http = ThreadingHTTPServer((host, port), handler)  # raises OSError: port in use
        else:
            self.http = ThreadingHTTPServer((host, port), handler, bind_and_activate=False)
            self.http.socket.close()
            self.http.socket = socket.socket(fileno=os.dup(inherited_fd))
            # Every child waits on this socket: the one that loses a connection to
            # another must not block in accept() (socketserver skips the BlockingIOError).
            self.http.socket.setblocking(False)
            self.http.server_address = self.http.socket.getsockname()
        self.http.daemon_threads = True
        self.port = self.http.server_address[1]
        self.worker = worker
        self.group = group
        self._state = "starting"
        self._stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self.http.serve_forever, name="telex-worker-metrics", daemon=True)
        ]
        if group is not None:
            self._threads.append(
                threading.Thread(target=self._publish, args=(group,), name="telex-worker-group", daemon=True)
            )

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self.http.shutdown()
        self.http.server_close()

    def _publish(self, group: ProcessGroup) -> None:
        """Once a second: check this worker's health (a layer round trip) and publish it with its metrics."""
        while not self._stopped.is_set():
            self._state = health_state(*health(self.worker))
            group.write()
            self._stopped.wait(WRITE_INTERVAL)


class _Handler(BaseHTTPRequestHandler):
    worker: Any
    group: ProcessGroup | None
    server_version = "telex-worker"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            render = self.worker.metrics.render if self.group is None else self.group.render
            self._answer(200, "text/plain; version=0.0.4", render())
        elif path == "/health":
            status, body = health(self.worker)
            status, group_body = group_health(self.group, status, body, health_state(status, body))
            self._answer(status, "application/json", json.dumps(group_body).encode() + b"\n")
        else:
            self._answer(404, "text/plain", b"Not Found: /metrics and /health are served here\n")

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        # send_response adds Date and Server (RFC 9110 §6.6.1).
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("metrics: %s %s", self.address_string(), format % args)
