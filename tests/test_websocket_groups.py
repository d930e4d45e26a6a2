"""Group broadcast end to end (issue 16): real ``telex serve`` processes, a
worker and a redis-server; every socket of a group far larger than one
server's ``process_local_capacity`` receives every broadcast."""

from __future__ import annotations

import asyncio
import re
import urllib.request
import uuid

import pytest
from websockets.asyncio.client import connect

from tests.support.processes import TelexProcess, TelexServer, free_port
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis

SOCKETS_PER_SERVER = 1000
#: Far below the sockets per server: only one entry per server and broadcast fits.
PROCESS_LOCAL_CAPACITY = 100


async def open_all(ports: list[int], per_server: int) -> list:
    gate = asyncio.Semaphore(100)

    async def one(port: int):
        async with gate:
            return await connect(
                f"ws://127.0.0.1:{port}/", open_timeout=30, ping_interval=None, max_queue=None
            )

    return await asyncio.gather(*(one(port) for port in ports for _ in range(per_server)))


async def broadcast(sockets: list, text: str) -> list[str]:
    """Send ``text`` from the first socket; what each socket receives next."""
    await sockets[0].send(text)
    return await asyncio.wait_for(asyncio.gather(*(ws.recv() for ws in sockets)), 60)


def metric(port: int, name: str) -> float:
    """One unlabelled metric from the /metrics of a server or worker on ``port``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    match = re.search(rf"^{name} (\S+)$", body, re.MULTILINE)
    assert match, body
    return float(match.group(1))


def test_every_socket_of_a_2000_member_group_on_two_servers_gets_every_broadcast(redis_server: RedisServer):
    prefix = f"groups-{uuid.uuid4().hex[:8]}"
    url = f"{redis_server.url}?prefix={prefix}&process_local_capacity={PROCESS_LOCAL_CAPACITY}"
    servers = [TelexServer(url, "--metrics-path", "/metrics", port=free_port(), ready=None) for _ in range(2)]
    worker_metrics = free_port()
    routing = "examples.chat.routing:channel_routing"
    worker = TelexProcess(
        ["worker", routing, "--layer", url, "--threads", "2", "--metrics-port", str(worker_metrics)],
        ready=None,
    )
    processes = [*servers, worker]
    try:
        for process in processes:
            process.start()
        for server in servers:
            server.wait_for("Telex serving with", timeout=30)
        worker.wait_for("worker listening on", timeout=30)

        async def main() -> list[list[str]]:
            sockets = await open_all([server.port for server in servers], SOCKETS_PER_SERVER)
            try:
                return [await broadcast(sockets, f"round {n}") for n in range(3)]
            finally:
                await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)

        rounds = asyncio.run(main())
        for n, received in enumerate(rounds):
            assert len(received) == 2 * SOCKETS_PER_SERVER
            assert set(received) == {f"[user] round {n}"}
        # The worker sends to the group, the servers read the entries: nothing lost on either side.
        for port in [server.port for server in servers] + [worker_metrics]:
            assert metric(port, "telex_layer_group_undelivered_total") == 0
            assert metric(port, "telex_layer_unreadable_entries_total") == 0
    finally:
        for process in processes:
            process.stop()
    for process in processes:
        assert not [line for line in process.lines if "Traceback" in line or " ERROR " in line]
