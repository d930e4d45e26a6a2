"""A worker's metrics and health, served over HTTP by the standard library.

``telex worker --metrics-port`` serves ``/metrics`` (Prometheus text format)
and ``/health`` from ``http.server`` on a daemon thread: a worker loads no
server code, so no Twisted here. Consumer threads count into one
:class:`WorkerMetrics` under its lock.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .._metrics import Registry
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


class MetricsServer:
    """``/metrics`` and ``/health`` of ``worker`` on ``host:port``, from a daemon thread."""

    def __init__(self, worker: Any, host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"worker": worker})
        self.http = ThreadingHTTPServer((host, port), handler)  # raises OSError: port in use
        self.http.daemon_threads = True
        self.port = self.http.server_address[1]
        self._thread = threading.Thread(
            target=self.http.serve_forever, name="telex-worker-metrics", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


class _Handler(BaseHTTPRequestHandler):
    worker: Any
    server_version = "telex-worker"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._answer(200, "text/plain; version=0.0.4", self.worker.metrics.render())
        elif path == "/health":
            status, body = health(self.worker)
            self._answer(status, "application/json", json.dumps(body).encode() + b"\n")
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
