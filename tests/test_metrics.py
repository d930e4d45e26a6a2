"""Prometheus metrics of the server and the worker, scraped over HTTP from real processes."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.error
import urllib.request

from telex.layers import RedisChannelLayer
from tests.support.http import RAW, request
from tests.support.processes import TelexProcess, TelexServer, run_telex
from tests.support.redis_server import free_port
from tests.support.waiting import wait_until
from tests.worker_harness import http_request


def parse(text: str) -> dict[str, float]:
    """``name{labels}`` → value, every sample line of a scrape; checks the HELP/TYPE lines too."""
    samples = {}
    typed = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
        elif line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
            base = name.split("{")[0]
            assert base in typed or base.rsplit("_", 1)[0] in typed, line
    return samples


def test_the_server_has_latency_histograms_and_process_series():
    with TelexServer(RAW, "--metrics-path", "/metrics", "--health-path", "/health") as server:
        for _ in range(3):
            assert request(server, "GET", "/hello")[0] == 200
        request(server, "GET", "/health")
        samples = parse(request(server, "GET", "/metrics")[2].decode())
    # Three application requests and the health check; the scrape itself is still running.
    assert samples["telex_http_request_duration_seconds_count"] == 4
    assert samples['telex_http_request_duration_seconds_bucket{le="+Inf"}'] == 4
    assert samples['telex_http_request_duration_seconds_bucket{le="30"}'] == 4
    assert samples["telex_http_request_duration_seconds_sum"] > 0
    assert samples["telex_layer_send_duration_seconds_count"] >= 3
    assert samples["process_resident_memory_bytes"] > 10_000_000
    assert samples["process_open_fds"] >= 3 and samples["process_max_fds"] >= samples["process_open_fds"]
    assert 0 < samples["process_cpu_seconds_total"] < 60
    assert abs(samples["process_start_time_seconds"] - time.time()) < 120


# -- telex worker --metrics-port -------------------------------------------------------------


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def worker_process(redis_url: str, port: int) -> TelexProcess:
    return TelexProcess(
        [
            "worker",
            "tests.worker_metrics_routing:channel_routing",
            "--layer",
            "tests.worker_metrics_routing:layer",
            "--threads",
            "2",
            "--ordering-timeout",
            "0.2",
            "--metrics-port",
            str(port),
        ],
        env={"METRICS_TEST_REDIS": redis_url},
        ready="metrics on",
    )


def test_a_worker_serves_prometheus_metrics_without_loading_server_code(fresh_redis_server):
    port = free_port()
    layer = RedisChannelLayer(hosts=[fresh_redis_server.url], prefix="metrics-test:")
    with worker_process(fresh_redis_server.url, port) as worker:
        assert http_request(layer, "/one")[0] == 200
        assert http_request(layer, "/two")[0] == 200
        assert http_request(layer, "/boom")[0] == 500
        # A held send to a full channel retries until the test makes room.
        layer.send("metrics-sink", {"from": "test"})
        layer.send("metrics-fill", {})
        assert wait_until(lambda: parse(scrape(port)[1]).get("telex_worker_send_retries_total", 0) > 0, 10)
        assert layer.receive(["metrics-sink"], block=True)[1] == {"from": "test"}
        assert layer.receive(["metrics-sink"], block=True)[1] == {"from": "fill"}
        # Order 2 of a socket whose 0 and 1 never come: skipped after --ordering-timeout.
        layer.send(
            "websocket.receive", {"reply_channel": "ws.reply!gap", "path": "/", "order": 2, "text": "x"}
        )
        assert wait_until(lambda: "telex_worker_ordering_skips_total 1" in scrape(port)[1], 10)
        status, text = scrape(port)
        assert status == 200
        samples = parse(text)
        assert scrape(port, "/nothing")[0] == 404
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0
    assert samples['telex_worker_messages_total{channel="http.request"}'] == 3
    assert samples['telex_worker_consumer_exceptions_total{channel="http.request"}'] == 1
    assert samples['telex_worker_consumer_duration_seconds_count{channel="http.request"}'] == 3
    assert samples['telex_worker_consumer_duration_seconds_bucket{channel="http.request",le="+Inf"}'] == 3
    assert samples['telex_worker_messages_total{channel="metrics-fill"}'] == 1
    assert "telex_worker_sends_dropped_total" not in samples  # counted only once one is dropped
    assert samples["telex_worker_busy_threads"] == 0
    assert samples["process_resident_memory_bytes"] > 0 and samples["process_open_fds"] > 0


def test_worker_health_reports_the_layer_and_stopping(fresh_redis_server):
    port = free_port()
    with worker_process(fresh_redis_server.url, port):
        status, body = scrape(port, "/health")
        assert status == 200 and json.loads(body) == {"status": "ok", "layer": "ok"}
        fresh_redis_server.stop()
        status, body = scrape(port, "/health")
        assert status == 503 and json.loads(body) == {"status": "down", "layer": "unreachable"}


def test_a_metrics_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_telex(
            [
                "worker",
                "tests.worker_metrics_routing:channel_routing",
                "--layer",
                "memory://",
                "--metrics-port",
                str(port),
            ]
        )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"telex worker: error: cannot serve metrics on 127.0.0.1:{port}: Address already in use"
    )
