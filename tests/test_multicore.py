"""Using every core: N Telex processes on one port.

Two ways, both tested: every process adopts the same inherited listening
socket (``--fd``, as systemd passes telex.socket to each telex@N.service),
or every process binds the port itself with SO_REUSEPORT (``--reuse-port``).
Each process names its reply channels with a prefix of its own, so the
reply channel in a request message tells which process took the connection.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.certs import make_ca, make_server_cert
from tests.support.http import RAW
from tests.support.processes import TelexProcess
from tests.support.redis_server import free_port

PROCESSES = 2


def serving_process(port: int) -> str:
    """Which process answered a fresh connection: its reply-channel prefix."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /message HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return json.loads(body)["reply_channel"].split("!")[0]


def start_all(processes: list[TelexProcess]) -> None:
    for process in processes:  # start together, then wait: start-up overlaps
        process.start()
    for process in processes:
        process.wait_for("listening on", 30)


@pytest.fixture(params=["shared-inherited-socket", "reuse-port"])
def group(request) -> Iterator[tuple[int, list[TelexProcess]]]:
    port = free_port()
    if request.param == "reuse-port":
        processes = [
            TelexProcess(["serve", RAW, "--reuse-port", "-b", "127.0.0.1", "-p", str(port)], ready=None)
            for _ in range(PROCESSES)
        ]
        start_all(processes)
    else:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", port))
            listener.listen(128)
            fd = listener.fileno()
            processes = [
                TelexProcess(["serve", RAW, "--fd", str(fd)], pass_fds=[fd], ready=None)
                for _ in range(PROCESSES)
            ]
            start_all(processes)
    try:
        yield port, processes
    finally:
        for process in processes:
            process.stop()


def test_connections_are_spread_across_the_processes(group):
    port, processes = group
    prefixes = {process.wait_for(r"reply channels (\S+)!").group(1) for process in processes}
    seen: set[str] = set()
    # Which waiting process accepts is up to the kernel; concurrent clients
    # make every process busy at some point. Bounded: 40 rounds of 8.
    with ThreadPoolExecutor(8) as pool:
        for _ in range(40):
            seen.update(pool.map(serving_process, [port] * 8))
            if seen == prefixes:
                break
    assert seen == prefixes


def test_the_others_keep_serving_when_one_process_dies(group):
    port, processes = group
    victim, *survivors = processes
    victim.signal(signal.SIGKILL)
    victim.wait(10)
    survivor_prefixes = {process.wait_for(r"reply channels (\S+)!").group(1) for process in survivors}
    answered = [serving_process(port) for _ in range(20)]
    assert set(answered) <= survivor_prefixes


def test_reuse_port_applies_to_tls_listeners_too(tmp_path):
    ca = make_ca()
    cert, key = make_server_cert(ca, "localhost").write(str(tmp_path), "server")
    port = free_port()
    args = ["serve", RAW, "--reuse-port", "-p", str(port), "--ssl-certfile", cert, "--ssl-keyfile", key]
    processes = [TelexProcess(args, ready=None) for _ in range(PROCESSES)]
    try:
        start_all(processes)  # without SO_REUSEPORT the second fails: address in use
        context = ssl.create_default_context(cadata=ca.cert_pem().decode())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"GET /over-tls HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                assert tls.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        for process in processes:
            process.stop()
