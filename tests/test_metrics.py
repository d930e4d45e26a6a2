"""Prometheus metrics of the server and the worker, scraped over HTTP from real processes."""

from __future__ import annotations

import time

from tests.support.http import RAW, request
from tests.support.processes import TelexServer


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
