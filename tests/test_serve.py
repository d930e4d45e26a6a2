"""``telex serve`` as users run it: flags, endpoints, layers, logs, lifecycle."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time

import pytest

from tests.apps.jsonable import from_jsonable as decode
from tests.support.http import RAW, received_message, request
from tests.support.processes import TelexProcess, TelexServer, run_telex
from tests.support.redis_server import free_port
from tests.support.waiting import wait_until

DAPHNE_FLAGS = [
    "-b",
    "--bind",
    "-p",
    "--port",
    "-u",
    "--unix-socket",
    "--fd",
    "-e",
    "--endpoint",
    "-v",
    "--verbosity",
    "-t",
    "--http-timeout",
    "--access-log",
    "--ping-interval",
    "--ping-timeout",
    "--ws-protocol",
    "--root-path",
    "--proxy-headers",
    "--websocket_timeout",
    "--websocket_connect_timeout",
    "--force-sync",
]


def test_version_is_printed_by_telex_and_python_m_telex():
    from telex import __version__

    result = run_telex(["--version"])
    assert result.returncode == 0 and result.stdout.strip() == f"telex {__version__}"


def test_serve_help_explains_every_daphne_flag_with_its_default():
    help_text = " ".join(run_telex(["serve", "--help"]).stdout.split())
    for flag in DAPHNE_FLAGS:
        assert flag in help_text, flag
    assert "default: 120.0" in help_text  # -t/--http-timeout
    assert "TELEX_HTTP_TIMEOUT" in help_text


# -- start-up errors: one line, non-zero --------------------------------------------


def _one_line_error(result, *fragments):
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert lines, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def test_a_port_in_use_is_reported_in_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_telex(["serve", RAW, "-p", str(port)])
    _one_line_error(result, "cannot listen", str(port))


def test_a_bad_endpoint_string_is_reported_in_one_line():
    _one_line_error(run_telex(["serve", RAW, "-e", "nonsense:1234"]), "endpoint 'nonsense:1234'")


def test_an_import_error_in_the_users_module_is_reported_in_one_line(tmp_path):
    (tmp_path / "broken_project.py").write_text("import module_that_does_not_exist_xyz\n")
    result = run_telex(["serve", "broken_project:channel_layer"], env={"PYTHONPATH": str(tmp_path)})
    _one_line_error(result, "module_that_does_not_exist_xyz")


def test_a_missing_layer_is_reported_in_one_line():
    _one_line_error(run_telex(["serve"]), "no channel layer given")


def test_a_traceback_is_shown_only_with_verbosity_2(tmp_path):
    (tmp_path / "raising_project.py").write_text("raise RuntimeError('boom at import')\n")
    env = {"PYTHONPATH": str(tmp_path)}
    quiet = run_telex(["serve", "raising_project:channel_layer"], env=env)
    _one_line_error(quiet, "boom at import")
    loud = run_telex(["serve", "raising_project:channel_layer", "-v", "2"], env=env)
    assert loud.returncode != 0 and "Traceback" in loud.stderr


def test_bad_flag_values_name_the_flag():
    result = run_telex(["serve", RAW, "--max-pending-output", "lots"])
    assert result.returncode == 2 and "--max-pending-output" in result.stderr


# -- flags from the environment ---------------------------------------------------------


def test_every_flag_can_come_from_a_telex_environment_variable():
    port = free_port()
    env = {"TELEX_LAYER": RAW, "TELEX_PORT": str(port), "TELEX_ROOT_PATH": "/from-env"}
    with TelexProcess(["serve"], env=env) as process:
        process.port = port
        assert received_message(process)["root_path"] == "/from-env"


# -- endpoints ----------------------------------------------------------------------------


def test_a_unix_socket_endpoint_serves_with_client_and_server_none(tmp_path):
    path = str(tmp_path / "telex.sock")
    with TelexProcess(["serve", RAW, "-u", path]):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(path)
            sock.sendall(b"GET /message HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    message = decode(json.loads(data.split(b"\r\n\r\n", 1)[1]))
    assert message["client"] is None and message["server"] is None


def test_an_inherited_socket_is_adopted_with_fd():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    fd = listener.fileno()
    with TelexProcess(["serve", RAW, "--fd", str(fd)], pass_fds=[fd]) as process:
        listener.close()
        process.port = port
        status, _, body = request(process, "GET", "/via-fd")
        assert status == 200 and body.endswith(b"/via-fd")


def test_several_endpoints_serve_at_once():
    first, second = free_port(), free_port()
    args = ["serve", RAW, "-e", f"tcp:{first}:interface=127.0.0.1", "-e", f"tcp:{second}:interface=127.0.0.1"]
    with TelexProcess(args) as process:
        process.wait_for(f":{second}")
        for port in (first, second):
            process.port = port
            assert request(process, "GET", "/")[0] == 200


# -- layers ---------------------------------------------------------------------------------


def test_a_foreign_layer_with_only_the_synchronous_api_is_served_through_threads():
    with TelexServer("tests.apps.sync_only:channel_layer") as server:
        server.wait_for("threaded bridge")
        assert request(server, "GET", "/through-threads")[2].endswith(b"/through-threads")
        results = []

        def fetch(i):
            results.append(request(server, "GET", f"/parallel/{i}")[2])

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(results) == sorted(
            f"Hello world! You asked for /parallel/{i}".encode() for i in range(20)
        )


def test_force_sync_uses_the_threaded_bridge_for_any_layer():
    with TelexServer(RAW, "--force-sync") as server:
        server.wait_for("threaded bridge")
        assert request(server, "GET", "/sync")[0] == 200


# -- proxies, logs, health, metrics ------------------------------------------------------------


def test_proxy_headers_are_honoured_from_trusted_peers_with_a_startup_warning():
    headers = {
        "X-Forwarded-For": "203.0.113.9, 10.0.0.1",
        "X-Forwarded-Port": "4431",
        "X-Forwarded-Proto": "https",
    }
    with TelexServer(RAW, "--proxy-headers") as server:
        server.wait_for("trusts only loopback")
        message = received_message(server, headers=headers)
        assert message["client"] == ["203.0.113.9", 4431]
        assert message["scheme"] == "https"


def test_proxy_headers_from_untrusted_peers_are_ignored():
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    with TelexServer(RAW, "--proxy-headers", "--proxy-headers-trusted", "192.0.2.1") as server:
        message = received_message(server, headers=headers)
        assert message["client"][0] == "127.0.0.1" and message["scheme"] == "http"


def test_the_access_log_is_written_in_combined_format(tmp_path):
    log = tmp_path / "access.log"
    with TelexServer(RAW, "--access-log", str(log)) as server:
        request(server, "GET", "/logged?x=1", headers={"User-Agent": "pytest-agent", "Referer": "http://r/"})
        assert wait_until(lambda: log.exists() and "/logged" in log.read_text())
    line = log.read_text().strip().splitlines()[-1]
    assert line.startswith("127.0.0.1 - - [")
    assert '"GET /logged?x=1 HTTP/1.1" 200 34 "http://r/" "pytest-agent"' in line
    assert float(line.rsplit(" ", 1)[1]) >= 0


def test_the_access_log_can_be_json(tmp_path):
    log = tmp_path / "access.jsonl"
    with TelexServer(RAW, "--access-log", str(log), "--access-log-format", "json") as server:
        request(server, "GET", "/json-logged")
        assert wait_until(lambda: log.exists() and "/json-logged" in log.read_text())
    entry = json.loads(log.read_text().strip().splitlines()[-1])
    assert entry["path"] == "/json-logged" and entry["status"] == 200 and entry["method"] == "GET"


@pytest.mark.parametrize(
    "layer", [RAW, "tests.apps.sync_only:channel_layer", "tests.apps.no_consumer:channel_layer"]
)
def test_the_health_path_is_answered_by_the_server_itself(layer):
    with TelexServer(layer, "--health-path", "/healthz") as server:
        status, _headers, body = request(server, "GET", "/healthz")
        assert status == 200 and json.loads(body) == {"status": "ok", "layer": "ok"}


def test_metrics_are_served_in_prometheus_format():
    with TelexServer(RAW, "--metrics-path", "/metrics") as server:
        request(server, "GET", "/counted")
        body = request(server, "GET", "/metrics")[2].decode()
    assert "# TYPE telex_http_responses_total counter" in body
    assert 'telex_http_responses_total{status="200"} 1' in body
    assert "telex_open_connections" in body
    assert "telex_reply_reader_lag_seconds 0" in body


# -- lifecycle ----------------------------------------------------------------------------------


def test_sigterm_lets_in_flight_responses_finish_and_exits_0():
    with TelexServer(RAW, "-t", "1", "--metrics-path", "/m") as server:
        results = []
        thread = threading.Thread(target=lambda: results.append(request(server, "GET", "/never")))
        thread.start()
        assert wait_until(lambda: b"telex_http_requests_started_total 1" in request(server, "GET", "/m")[2])
        server.signal(signal.SIGTERM)
        server.wait_for("shutting down")
        thread.join(10)
        assert results and results[0][0] == 503  # answered (timeout 503), not cut off
        assert server.wait(15) == 0


def test_a_second_signal_exits_at_once():
    with TelexServer(RAW, "-t", "60", "--graceful-timeout", "60", "--metrics-path", "/m") as server:
        held = socket.create_connection(("127.0.0.1", server.port))
        held.sendall(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_until(lambda: b"telex_http_requests_started_total 1" in request(server, "GET", "/m")[2])
        server.signal(signal.SIGTERM)
        server.wait_for("shutting down")
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(10) == 1
        assert time.monotonic() - started < 5
        held.close()


def test_the_open_file_limit_is_raised_to_the_hard_limit():
    with TelexServer(RAW) as server:
        with open(f"/proc/{server.process.pid}/limits") as limits:
            line = next(row for row in limits if row.startswith("Max open files"))
        soft, hard = line.split()[3:5]
        assert soft == hard
