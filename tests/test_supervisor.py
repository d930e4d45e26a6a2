"""One command, N processes: ``telex serve --workers N``, ``telex worker --processes N``,
and ``--reload`` (docs/deployment.md).

Everything here runs the real command: a supervisor process that binds the
socket, its children that inherit it, real signals and real files.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from telex.layers import RedisChannelLayer
from tests.support.certs import make_ca, make_server_cert
from tests.support.http import RAW, request
from tests.support.processes import TelexProcess, TelexServer, run_telex
from tests.support.redis_server import free_port
from tests.test_multicore import serving_process
from tests.worker_harness import http_request


def children_of(supervisor: TelexProcess) -> dict[int, int]:
    """``{index: pid}`` of the children the supervisor started, the latest of each."""
    started = re.findall(r"started process (\d+) \(pid (\d+)\)", supervisor.output)
    return {int(index): int(pid) for index, pid in started}


def wait_for_count(process: TelexProcess, pattern: str, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(re.findall(pattern, process.output)) < count:
        process.wait_for(pattern, max(0.1, deadline - time.monotonic()))
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} lines matching {pattern!r}:\n{process.output}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def two_workers():
    with TelexServer(RAW, "--workers", "2", ready=None) as server:
        wait_for_count(server, "reply channels", 2)
        yield server


def test_serve_workers_runs_n_processes_on_one_socket(two_workers):
    prefixes = set(re.findall(r"reply channels (\S+)!", two_workers.output))
    assert len(prefixes) == 2
    seen: set[str] = set()
    with ThreadPoolExecutor(8) as pool:
        for _ in range(40):
            seen.update(pool.map(serving_process, [two_workers.port] * 8))
            if seen == prefixes:
                break
    assert seen == prefixes


def test_sigterm_reaches_every_child_and_the_supervisor_exits_0(two_workers):
    pids = children_of(two_workers).values()
    two_workers.signal(signal.SIGTERM)
    assert two_workers.wait(20) == 0
    assert two_workers.output.count("received SIGTERM, shutting down") == 2
    assert not any(alive(pid) for pid in pids)


def test_a_killed_child_is_restarted_and_the_socket_never_closes(two_workers):
    victim = children_of(two_workers)[0]
    os.kill(victim, signal.SIGKILL)
    # While it is being replaced, every connection is answered (the other child,
    # or the queue of the socket the supervisor holds open).
    answered = [serving_process(two_workers.port) for _ in range(20)]
    assert len(answered) == 20
    two_workers.wait_for(rf"process 0 \(pid {victim}\) exited with signal SIGKILL; restarting in")
    wait_for_count(two_workers, "reply channels", 3)
    assert children_of(two_workers)[0] != victim
    status, _, _ = request(two_workers, "GET", "/message/after-restart")
    assert status == 200


def test_a_child_left_without_its_supervisor_stops():
    server = TelexServer(RAW, "--workers", "2", ready=None)
    with server:
        wait_for_count(server, "reply channels", 2)
        pids = children_of(server).values()
        server.signal(signal.SIGKILL)
        deadline = time.monotonic() + 15
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in pids)


@pytest.mark.parametrize(
    "args",
    [
        ["memory://", "--workers", "2"],
        [RAW, "--routing", "examples.hello_http.routing:channel_routing", "--workers", "2"],
    ],
    ids=["memory", "routing"],
)
def test_workers_with_a_process_local_layer_is_refused_in_one_line(args):
    result = run_telex(["serve", *args])
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--workers > 1 needs a layer shared between processes" in result.stderr


def test_worker_processes_with_memory_is_refused_in_one_line():
    result = run_telex(
        ["worker", "examples.hello_http.routing:channel_routing", "--layer", "memory://", "--processes", "2"]
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "telex worker: error: --processes > 1 needs a layer shared between processes (redis://...), not memory://"
    )


def scrape(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_worker_processes_share_one_metrics_port_and_every_scrape_reports_all(fresh_redis_server):
    port = free_port()
    args = [
        "worker",
        "tests.worker_metrics_routing:channel_routing",
        "--layer",
        "tests.worker_metrics_routing:layer",
    ]
    workers = TelexProcess(
        [*args, "--processes", "2", "--metrics-port", str(port)],
        env={"METRICS_TEST_REDIS": fresh_redis_server.url},
        ready=None,
    )
    layer = RedisChannelLayer(hosts=[fresh_redis_server.url], prefix="metrics-test:")
    with workers:
        wait_for_count(workers, f"metrics on http://127.0.0.1:{port}/metrics", 2)
        for number in range(10):
            assert http_request(layer, f"/{number}")[0] == 200
        consumed = r'^telex_worker_messages_total\{process="(\d)",channel="http.request"\} (\S+)$'
        busy = r'^telex_worker_busy_threads\{process="(\d)"\} '
        deadline = time.monotonic() + 15
        while True:
            text = scrape(port, "/metrics")[1]
            counts = {index: float(value) for index, value in re.findall(consumed, text, re.MULTILINE)}
            # Each process publishes once a second: wait for both, and for the sum.
            if set(re.findall(busy, text, re.MULTILINE)) == {"0", "1"} and sum(counts.values()) == 10:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        for _ in range(10):  # a fresh connection each: either process may take it
            assert set(re.findall(busy, scrape(port, "/metrics")[1], re.MULTILINE)) == {"0", "1"}
        ready = {"status": "ok", "layer": "ok", "processes": {"0": "ok", "1": "ok"}}
        deadline = time.monotonic() + 15
        while (answer := scrape(port, "/health")) != (200, json.dumps(ready) + "\n"):
            assert time.monotonic() < deadline, answer
            time.sleep(0.2)
        stopped = children_of(workers)[0]
        stop_process(stopped)
        try:
            down = {"status": "down", "layer": "ok", "processes": {"0": "unresponsive", "1": "ok"}}
            deadline = time.monotonic() + 15
            while (answer := scrape(port, "/health")) != (503, json.dumps(down) + "\n"):
                assert time.monotonic() < deadline, answer
                time.sleep(0.2)
        finally:
            os.kill(stopped, signal.SIGCONT)
        workers.signal(signal.SIGTERM)
        assert workers.wait(30) == 0, workers.output


def test_worker_processes_share_the_work_and_are_restarted(redis_server):
    routing = "examples.hello_http.routing:channel_routing"
    workers = TelexProcess(["worker", routing, "--layer", redis_server.url, "--processes", "2"], ready=None)
    with TelexServer(redis_server.url) as server, workers:
        wait_for_count(workers, "worker listening on", 2)
        victim = children_of(workers)[1]
        os.kill(victim, signal.SIGKILL)
        workers.wait_for(rf"process 1 \(pid {victim}\) exited with signal SIGKILL; restarting in")
        wait_for_count(workers, r"started process 1", 2)
        status, _, _ = request(server, "GET", "/")
        assert status == 200
        workers.signal(signal.SIGTERM)
        assert workers.wait(30) == 0, workers.output


def test_a_child_exiting_with_a_usage_error_stops_the_supervisor(tmp_path):
    # Every child fails the same way (the layer module does not exist): no restart loop.
    result = TelexServer("no_such_module:layer", "--workers", "2", ready=None)
    with result:
        assert result.wait(30) == 2
    assert "exited with a usage error; stopping" in result.output
    assert "restarting in" not in result.output


def write_app(directory, answer: str) -> None:
    (directory / "reloaded_app.py").write_text(
        f"from tests.apps.raw_http import channel_layer  # noqa: F401\nANSWER = {answer!r}\n"
    )


def test_reload_restarts_on_a_change_under_the_current_directory_only(tmp_path):
    write_app(tmp_path, "one")
    for ignored in (".git", "__pycache__", ".venv", "env"):
        (tmp_path / ignored).mkdir()
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    server = TelexServer("reloaded_app:channel_layer", "--reload", ready=None, cwd=str(tmp_path))
    server.env["PYTHONPATH"] = str(tmp_path) + os.pathsep + server.env["PYTHONPATH"]
    with server:
        server.wait_for("--reload is for development")
        wait_for_count(server, "reply channels", 1)
        for ignored in (".git", "__pycache__", ".venv", "env"):
            (tmp_path / ignored / "module.py").write_text("x = 1\n")
        time.sleep(0.01)
        write_app(tmp_path, "two")
        os.utime(tmp_path / "reloaded_app.py", (time.time() + 5, time.time() + 5))
        server.wait_for(r"reloaded_app\.py changed; restarting", 15)
        wait_for_count(server, "reply channels", 2)
        assert "module.py" not in server.output
        status, _, _ = request(server, "GET", "/message/reloaded")
        assert status == 200
        server.signal(signal.SIGINT)
        assert server.wait(20) == 0


def test_reload_keeps_the_socket_while_the_code_fails_to_import(tmp_path):
    write_app(tmp_path, "one")
    server = TelexServer("reloaded_app:channel_layer", "--reload", ready=None, cwd=str(tmp_path))
    server.env["PYTHONPATH"] = str(tmp_path) + os.pathsep + server.env["PYTHONPATH"]
    with server:
        wait_for_count(server, "reply channels", 1)
        (tmp_path / "reloaded_app.py").write_text("this is not python\n")
        os.utime(tmp_path / "reloaded_app.py", (time.time() + 5, time.time() + 5))
        server.wait_for("waiting for a change", 15)
        # The supervisor still holds the port: connections queue instead of being refused.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            pass
        write_app(tmp_path, "fixed")
        os.utime(tmp_path / "reloaded_app.py", (time.time() + 10, time.time() + 10))
        wait_for_count(server, "reply channels", 2, timeout=20)


def metric_samples(server: TelexProcess, name: str) -> dict[str, float]:
    """``{process: value}`` of one metric, from one scrape."""
    status, _, body = request(server, "GET", "/metrics")
    assert status == 200
    found = re.findall(rf'^{name}{{process="(\d+)"}} (\S+)$', body.decode(), re.MULTILINE)
    return {process: float(value) for process, value in found}


def test_metrics_report_every_child_whichever_takes_the_scrape():
    with TelexServer(RAW, "--workers", "2", "--metrics-path", "/metrics", ready=None) as server:
        wait_for_count(server, "reply channels", 2)
        for number in range(10):
            assert request(server, "GET", f"/message/{number}")[0] == 200
        deadline = time.monotonic() + 15
        while True:
            # A counter appears in a process once it counted: the sum is what matters.
            samples = metric_samples(server, "telex_http_requests_started_total")
            # Each child publishes its figures once a second: wait for the first of both too.
            children = set(metric_samples(server, "telex_open_websockets"))
            if sum(samples.values()) == 10 and children == {"0", "1"}:
                break
            assert time.monotonic() < deadline, samples
            time.sleep(0.2)
        # Every scrape (a fresh connection each, so either child may take it) sees both.
        for _ in range(10):
            assert set(metric_samples(server, "telex_open_websockets")) == {"0", "1"}


def test_workers_share_a_unix_socket_the_supervisor_binds(tmp_path):
    path = str(tmp_path / "telex.sock")
    server = TelexProcess(["serve", RAW, "--workers", "2", "-u", path], ready=None)
    with server:
        wait_for_count(server, "reply channels", 2)
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(10)
            client.connect(path)
            client.sendall(b"GET /message HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert client.recv(65536).startswith(b"HTTP/1.1 200")
        server.signal(signal.SIGTERM)
        assert server.wait(20) == 0
    assert not os.path.exists(path)


def test_worker_reload_restarts_on_a_change_to_its_routing_module(tmp_path, redis_server):
    (tmp_path / "reloaded_routing.py").write_text("channel_routing = []\n")
    url = redis_server.url + "?prefix=reload-worker"
    worker = TelexProcess(
        ["worker", "reloaded_routing:channel_routing", "--layer", url, "--reload"],
        ready=None,
        cwd=str(tmp_path),
    )
    worker.env["PYTHONPATH"] = str(tmp_path) + os.pathsep + worker.env["PYTHONPATH"]
    with worker:
        wait_for_count(worker, "worker listening on", 1)
        (tmp_path / "reloaded_routing.py").write_text("channel_routing = []  # changed\n")
        os.utime(tmp_path / "reloaded_routing.py", (time.time() + 5, time.time() + 5))
        worker.wait_for(r"reloaded_routing\.py changed; restarting", 15)
        wait_for_count(worker, "worker listening on", 2)
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0


def test_workers_on_an_inherited_fd_tell_systemd_ready_and_stopping_from_the_supervisor(tmp_path):
    # telex.service's own command plus --workers: systemd passes the socket as --fd and
    # hears READY=1 from the main process only (NotifyAccess=main).
    with socket.socket() as listener, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(15)
        fd = listener.fileno()
        args = ["serve", RAW, "--fd", str(fd), "--workers", "2"]
        server = TelexProcess(
            args, env={"NOTIFY_SOCKET": str(tmp_path / "notify")}, pass_fds=[fd], ready=None
        )
        server.port = listener.getsockname()[1]
        with server:
            assert notify.recv(4096) == b"READY=1"
            # Connections wait in the socket's queue until a child accepts them.
            assert request(server, "GET", "/message/ready")[0] == 200
            wait_for_count(server, "reply channels", 2)
            server.signal(signal.SIGTERM)
            assert notify.recv(4096) == b"STOPPING=1"
            assert server.wait(20) == 0
            # Only the supervisor spoke: no child sent its own READY=1.
            notify.setblocking(False)
            with pytest.raises(BlockingIOError):
                notify.recv(4096)


def stop_process(pid: int) -> None:
    """SIGSTOP, and wait until every thread is stopped: until then it may still accept a connection."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while True:
        states = set()
        for thread in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{thread}/stat") as stat:
                states.add(stat.read().rsplit(")", 1)[1].split()[0])
        if states == {"T"}:
            return
        assert time.monotonic() < deadline, states
        time.sleep(0.01)


def health(server: TelexProcess) -> tuple[int, dict]:
    status, _, body = request(server, "GET", "/health")
    return status, json.loads(body)


def wait_for_health(server: TelexProcess, wanted: tuple[int, dict], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (answer := health(server)) != wanted:
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)


READY_PAIR = (200, {"status": "ok", "layer": "ok", "processes": {"0": "ok", "1": "ok"}})


def test_health_is_ready_only_when_every_child_is_whichever_takes_the_probe():
    with TelexServer(RAW, "--workers", "2", "--health-path", "/health", ready=None) as server:
        wait_for_count(server, "reply channels", 2)
        wait_for_health(server, READY_PAIR)
        stopped = children_of(server)[1]
        stop_process(stopped)  # alive, holding the socket, answering nothing
        try:
            # Its state goes stale; the other child answers every probe from then on.
            wait_for_health(
                server,
                (503, {"status": "down", "layer": "ok", "processes": {"0": "ok", "1": "unresponsive"}}),
            )
            # A fresh connection each: whichever child the kernel picks, the same answer.
            for _ in range(10):
                assert health(server)[0] == 503
        finally:
            os.kill(stopped, signal.SIGCONT)
        wait_for_health(server, READY_PAIR)
        replaced = children_of(server)[0]
        os.kill(replaced, signal.SIGKILL)
        server.wait_for(rf"process 0 \(pid {replaced}\) exited")
        status, body = health(server)  # child 1, until child 0 is back and has published
        assert status == 503 or body == READY_PAIR[1]
        assert body["processes"]["0"] in ("not running", "ok")
        wait_for_health(server, READY_PAIR)


def test_health_under_workers_reports_each_child_losing_the_layer(fresh_redis_server):
    with TelexServer(
        fresh_redis_server.url, "--workers", "2", "--health-path", "/health", ready=None
    ) as server:
        wait_for_count(server, "reply channels", 2)
        wait_for_health(server, READY_PAIR)
        fresh_redis_server.kill()
        for _ in range(5):
            assert health(server)[0] == 503
        down = {"0": "layer unreachable", "1": "layer unreachable"}
        wait_for_health(server, (503, {"status": "down", "layer": "unreachable", "processes": down}))
        fresh_redis_server.start()
        wait_for_health(server, READY_PAIR, timeout=10)


def processes_answering(connect, expected: int = 2, tries: int = 60) -> set[str]:
    """The reply-channel prefixes of the processes that answered fresh connections
    made by ``connect`` (a GET /message on a new socket), until ``expected`` differ."""
    seen: set[str] = set()
    with ThreadPoolExecutor(4) as pool:
        for _ in range(tries):
            for answer in pool.map(lambda _: connect(), range(4)):
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), head
                seen.add(json.loads(body)["reply_channel"].split("!")[0])
            if len(seen) >= expected:
                break
    return seen


def exchange(sock: socket.socket) -> bytes:
    with sock:
        sock.sendall(b"GET /message HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def tcp_get(port: int) -> bytes:
    return exchange(socket.create_connection(("127.0.0.1", port), timeout=10))


def unix_get(path: str) -> bytes:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(path)
    return exchange(sock)


def tls_get(port: int, context: ssl.SSLContext) -> bytes:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return exchange(context.wrap_socket(raw, server_hostname="localhost"))


def both_children_serve(process: TelexProcess, connect) -> None:
    wait_for_count(process, "reply channels", 2)
    prefixes = set(re.findall(r"reply channels (\S+)!", process.output))
    assert processes_answering(connect) == prefixes


@pytest.fixture
def certificate(tmp_path):
    """(certificate path, key path, a client context trusting it)."""
    ca = make_ca()
    cert_path, key_path = make_server_cert(ca, "localhost").write(str(tmp_path), "server")
    context = ssl.create_default_context(cadata=ca.cert_pem().decode())
    return cert_path, key_path, context


def test_workers_share_a_tcp_endpoint_string():
    port = free_port()
    with TelexProcess(
        ["serve", RAW, "--workers", "2", "-e", f"tcp:{port}:interface=127.0.0.1"], ready=None
    ) as server:
        both_children_serve(server, lambda: tcp_get(port))
        assert server.output.count(f"listening on http://127.0.0.1:{port}/") == 2


def test_workers_share_a_unix_endpoint_string_and_its_mode(tmp_path):
    path = str(tmp_path / "endpoint.sock")
    server = TelexProcess(["serve", RAW, "--workers", "2", "-e", f"unix:{path}:mode=600"], ready=None)
    with server:
        both_children_serve(server, lambda: unix_get(path))
        assert os.stat(path).st_mode & 0o777 == 0o600
        server.signal(signal.SIGTERM)
        assert server.wait(20) == 0
    assert not os.path.exists(path)


def test_workers_share_an_ssl_endpoint_string_each_child_doing_tls(certificate):
    cert_path, key_path, context = certificate
    port = free_port()
    endpoint = f"ssl:{port}:interface=127.0.0.1:privateKey={key_path}:certKey={cert_path}"
    with TelexProcess(["serve", RAW, "--workers", "2", "-e", endpoint], ready=None) as server:
        both_children_serve(server, lambda: tls_get(port, context))
        assert server.output.count(f"listening on https://127.0.0.1:{port}/") == 2


def test_workers_share_the_ssl_flags_listener_with_h2_by_alpn(certificate):
    cert_path, key_path, context = certificate
    args = [RAW, "--workers", "2", "--ssl-certfile", cert_path, "--ssl-keyfile", key_path]
    with TelexServer(*args, ready=None) as server:
        both_children_serve(server, lambda: tls_get(server.port, context))
        context.set_alpn_protocols(["h2", "http/1.1"])
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            assert sock.selected_alpn_protocol() == "h2"


def test_reload_serves_an_endpoint_string(tmp_path):
    write_app(tmp_path, "one")
    port = free_port()
    server = TelexProcess(
        ["serve", "reloaded_app:channel_layer", "--reload", "-e", f"tcp:{port}:interface=127.0.0.1"],
        ready=None,
        cwd=str(tmp_path),
    )
    server.env["PYTHONPATH"] = str(tmp_path) + os.pathsep + server.env["PYTHONPATH"]
    with server:
        wait_for_count(server, "reply channels", 1)
        assert tcp_get(port).startswith(b"HTTP/1.1 200")
        write_app(tmp_path, "two")
        os.utime(tmp_path / "reloaded_app.py", (time.time() + 5, time.time() + 5))
        wait_for_count(server, "reply channels", 2, timeout=20)
        assert tcp_get(port).startswith(b"HTTP/1.1 200")


def test_workers_refuse_an_endpoint_that_listens_on_no_socket_in_one_line():
    result = run_telex(["serve", RAW, "--workers", "2", "-e", "stdio:"])
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "telex serve: error: endpoint 'stdio:' cannot be shared by --workers or --reload: the supervisor "
        "binds sockets for its children, and this endpoint does not listen on one (tcp:, tcp6:, unix:, "
        "ssl: and systemd: do)"
    )


def test_workers_name_an_endpoint_they_cannot_bind_in_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_telex(["serve", RAW, "--workers", "2", "-e", f"tcp:{port}:interface=127.0.0.1"])
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"telex serve: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
