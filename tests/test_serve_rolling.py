"""Rolling restarts: SIGUSR2 to ``telex serve --workers N`` replaces the children one at
a time on the sockets the supervisor holds (docs/deployment.md).

Real supervisors, children, sockets and signals; every wait is for a log line or a
pid, bounded.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import threading

from websockets.sync.client import connect

from tests.support.http import RAW
from tests.support.processes import TelexProcess, TelexServer
from tests.support.redis_server import unique_prefix
from tests.support.ws import RAW_WS, close_code_of, whoami, ws_url
from tests.test_multicore import serving_process
from tests.test_supervisor import READY_PAIR, alive, children_of, unix_get, wait_for_count, wait_for_health

HELLO = "examples.hello_http.routing:channel_routing"


def fresh_get(port: int, path: str) -> bytes:
    """One request on a new connection; what the server answered, or the error as text."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data
    except OSError as exc:
        return repr(exc).encode()


def prefixes_after(server: TelexProcess, line: str) -> set[str]:
    """The reply-channel prefixes of the processes that started after the first ``line``."""
    later = server.output.split(line, 1)[1]
    return set(re.findall(r"reply channels (\S+)!", later))


def test_a_rolling_restart_replaces_every_child_and_every_new_connection_is_answered(redis_server):
    url = redis_server.url + "?prefix=" + unique_prefix()
    worker = TelexProcess(["worker", HELLO, "--layer", url], ready="worker listening on")
    server = TelexServer(url, "--workers", "2", "--health-path", "/health", ready=None)
    with worker, server:
        wait_for_count(server, "reply channels", 2)
        wait_for_health(server, READY_PAIR)
        before = children_of(server)
        answers: list[bytes] = []
        rolled = threading.Event()

        def client() -> None:
            for number in range(20_000):  # a fresh connection each, until the roll is over
                if rolled.is_set():
                    return
                answers.append(fresh_get(server.port, "/health" if number % 4 == 0 else f"/n{number}"))

        thread = threading.Thread(target=client)
        thread.start()
        try:
            server.signal(signal.SIGUSR2)
            server.wait_for(r"rolling restart done: 2 process\(es\) replaced", 60)
            wait_for_count(server, r"old process \d \(pid \d+\) drained and exited", 2)
        finally:
            rolled.set()
            thread.join(60)
        after = children_of(server)
        assert set(before.values()).isdisjoint(after.values())
        assert not any(alive(pid) for pid in before.values())
        failed = [answer for answer in answers if not answer.startswith(b"HTTP/1.1 200 ")]
        assert not failed, failed[:3]
        # The health path answered ready throughout: each index's state is published by
        # its replacement before the old process stops publishing it.
        health = [answer for answer in answers if b'"processes"' in answer]
        assert health and all(b'"1": "ok"' in answer and b'"0": "ok"' in answer for answer in health)
        server.wait_for("drained: no WebSocket left open")
        assert server.output.count("rolling restart: process") == 2
        wait_for_health(server, READY_PAIR)
        server.signal(signal.SIGTERM)
        assert server.wait(30) == 0


def test_a_websocket_on_a_replaced_child_stays_open_until_the_drain_timeout_then_gets_1001():
    with TelexServer(RAW_WS, "--workers", "2", "--drain-timeout", "5", ready=None) as server:
        wait_for_count(server, "reply channels", 2)
        old = set(children_of(server).values())
        with connect(ws_url(server, "/echo")) as old_socket:
            old_process = whoami(old_socket).split("!")[0]
            server.signal(signal.SIGUSR2)
            server.wait_for(r"received SIGUSR2: draining: no new connections; 1 WebSocket\(s\) open", 30)
            wait_for_count(server, "received SIGUSR2: draining", 2)
            # The old processes accept nothing more: a new socket gets a new process.
            with connect(ws_url(server, "/echo")) as new_socket:
                assert whoami(new_socket).split("!")[0] in prefixes_after(server, "received SIGUSR2")
            old_socket.send("still here")
            assert old_socket.recv(timeout=10) == "still here"
            assert close_code_of(old_socket) == 1001
        assert old_process not in prefixes_after(server, "received SIGUSR2")
        server.wait_for(r"drain timeout: closing 1 WebSocket\(s\) with 1001")
        wait_for_count(server, r"old process \d \(pid \d+\) drained and exited", 2)
        assert not any(alive(pid) for pid in old)


def test_an_old_child_exits_as_soon_as_its_last_websocket_closes():
    # A drain timeout far beyond every wait below: only the client leaving ends the drain.
    with TelexServer(RAW_WS, "--workers", "2", "--drain-timeout", "600", ready=None) as server:
        wait_for_count(server, "reply channels", 2)
        with connect(ws_url(server, "/echo")) as old_socket:
            whoami(old_socket)
            server.signal(signal.SIGUSR2)
            server.wait_for(r"received SIGUSR2: draining: no new connections; 1 WebSocket\(s\) open", 30)
            server.wait_for(r"rolling restart done: 2 process\(es\) replaced", 30)
            old_socket.send("still here")
            assert old_socket.recv(timeout=10) == "still here"
        wait_for_count(server, "drained: no WebSocket left open", 2)
        wait_for_count(server, r"old process \d \(pid \d+\) drained and exited", 2)
        assert "drain timeout" not in server.output


def test_a_second_sigusr2_during_a_roll_rolls_again_once_it_ends():
    with TelexServer(RAW, "--workers", "2", ready=None) as server:
        wait_for_count(server, "reply channels", 2)
        first = set(children_of(server).values())
        server.signal(signal.SIGUSR2)
        server.wait_for("received SIGUSR2: rolling restart of 2 process")
        server.signal(signal.SIGUSR2)
        server.wait_for("received SIGUSR2 during a rolling restart: another one follows when this one ends")
        wait_for_count(server, r"rolling restart done: 2 process\(es\) replaced", 2, timeout=60)
        wait_for_count(server, r"old process \d \(pid \d+\) drained and exited", 4)
        assert server.output.count("started process") == 6  # 2, then 2 replaced twice
        assert first.isdisjoint(children_of(server).values())
        assert serving_process(server.port) in prefixes_after(server, "rolling restart done")


def write_app(directory) -> None:
    (directory / "rolling_app.py").write_text(
        "import os\n"
        "from tests.apps.raw_http import channel_layer  # noqa: F401\n"
        "if os.path.exists(os.path.join(os.path.dirname(__file__), 'broken')):\n"
        "    raise RuntimeError('this release is broken')\n"
    )


def test_a_replacement_that_fails_to_start_abandons_the_roll_and_keeps_the_old_child(tmp_path):
    write_app(tmp_path)
    server = TelexServer("rolling_app:channel_layer", "--workers", "2", ready=None, cwd=str(tmp_path))
    server.env["PYTHONPATH"] = str(tmp_path) + os.pathsep + server.env["PYTHONPATH"]
    with server:
        wait_for_count(server, "reply channels", 2)
        old = children_of(server)
        (tmp_path / "broken").write_text("")
        server.signal(signal.SIGUSR2)
        server.wait_for(
            r"rolling restart abandoned: new process 0 \(pid \d+\) exited with status 2 before it was "
            r"ready; the old one keeps serving",
            30,
        )
        assert server.process is not None and server.process.poll() is None
        assert all(alive(pid) for pid in old.values())
        assert "is ready; old pid" not in server.output
        assert serving_process(server.port)
        (tmp_path / "broken").unlink()
        server.signal(signal.SIGUSR2)
        server.wait_for(r"rolling restart done: 2 process\(es\) replaced", 60)
        assert set(old.values()).isdisjoint(children_of(server).values())


def test_a_replacement_not_ready_in_time_is_killed_and_the_old_child_kept(tmp_path):
    # The supervisor alone, with a child that never says it is ready.
    script = tmp_path / "supervise.py"
    script.write_text(
        "import logging, signal, sys\n"
        "from telex.supervisor import Supervisor\n"
        "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        "child = [sys.executable, '-c', 'import time; time.sleep(600)']\n"
        "sys.exit(Supervisor(child, 1, drain_signal=signal.SIGTERM, ready_timeout=0.5).run())\n"
    )
    with TelexProcess([], ready="started process 0", command=[sys.executable, str(script)]) as supervisor:
        old = children_of(supervisor)[0]
        supervisor.signal(signal.SIGUSR2)
        killed = supervisor.wait_for(
            r"rolling restart abandoned: new process 0 \(pid (\d+)\) not ready after 0.5 s, killed; "
            "the old one keeps serving",
            30,
        )
        supervisor.wait_for(rf"pid {killed[1]} \(process 0\) exited with signal SIGKILL", 10)
        assert alive(old)
        supervisor.signal(signal.SIGTERM)
        assert supervisor.wait(20) == 0


def test_a_rolling_restart_on_a_unix_socket_keeps_its_path(tmp_path):
    path = str(tmp_path / "telex.sock")
    with TelexProcess(["serve", RAW, "-u", path, "--workers", "2"], ready=None) as server:
        wait_for_count(server, "reply channels", 2)
        server.signal(signal.SIGUSR2)
        server.wait_for(r"rolling restart done: 2 process\(es\) replaced", 60)
        wait_for_count(server, r"old process \d \(pid \d+\) drained and exited", 2)
        # A stopped child used to remove the socket file the others still serve.
        assert unix_get(path).startswith(b"HTTP/1.1 200 ")


def test_sigusr2_to_worker_processes_is_ignored_with_a_line(redis_server):
    url = redis_server.url + "?prefix=" + unique_prefix()
    with TelexProcess(["worker", HELLO, "--layer", url, "--processes", "2"], ready=None) as workers:
        wait_for_count(workers, "worker listening on", 2)
        before = children_of(workers)
        workers.signal(signal.SIGUSR2)
        workers.wait_for("received SIGUSR2: rolling restarts are for telex serve --workers; ignored")
        assert children_of(workers) == before and all(alive(pid) for pid in before.values())
        workers.signal(signal.SIGTERM)
        assert workers.wait(30) == 0
