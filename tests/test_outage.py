"""The channel layer down: at start, and while running (docs/deployment.md, "When the channel
layer is down"). A real redis-server, killed and started again on the same port."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.http import request
from tests.support.processes import TelexProcess, TelexServer, run_telex
from tests.support.redis_server import RedisServer, free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.redis

HELLO = "examples.hello_http.routing:channel_routing"


def _worker(url: str, *extra: str, ready: str | None = "listening on") -> TelexProcess:
    return TelexProcess(["worker", HELLO, "--layer", url, *extra], ready=ready)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_layer_down_at_start_is_one_line_and_status_1_for_both_commands(command):
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    args = ["serve", url, "-p", str(free_port())] if command == "serve" else ["worker", HELLO, "--layer", url]
    result = run_telex(args)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"telex {command}: error: channel layer unreachable: RedisUnavailable: ")
    assert "Traceback" not in result.stderr


def test_supervised_processes_wait_out_a_redis_slow_to_start():
    redis = RedisServer()  # its port chosen, not started yet: Redis still booting
    workers = _worker(redis.url, "--processes", "2", ready=None)
    with workers:
        workers.wait_for(r"process \d \(pid \d+\) exited with status 1; restarting in", 20)
        redis.start()
        try:
            with TelexServer(redis.url) as server:
                assert wait_until(lambda: request(server, "GET", "/after-boot")[0] == 200, timeout=60)
        finally:
            workers.stop()
            redis.kill()


def test_the_server_logs_an_outage_once_with_summaries_and_its_end(fresh_redis_server):
    url = fresh_redis_server.url
    with TelexServer(url, "--outage-summary-interval", "0.5") as server, _worker(url):
        assert request(server, "GET", "/before")[0] == 200
        fresh_redis_server.kill()
        started = time.monotonic()
        failed = 0
        while time.monotonic() - started < 1.5 or "still unavailable" not in server.output:
            status, _, _ = request(server, "GET", f"/during/{failed}")
            assert status == 503
            failed += 1
            assert time.monotonic() - started < 30, server.output
        server.wait_for(r"channel layer still unavailable after \d+ s: \d+ sends failed")
        fresh_redis_server.start()
        assert wait_until(lambda: request(server, "GET", "/after")[0] == 200, timeout=30)
        server.wait_for(r"INFO\s+telex.server channel layer available again after [\d.]+ s: ")
        output = server.output
    assert output.count("channel layer unavailable: ") == 1
    # A handful of lines for hundreds of failed requests (Redis's own two, the data-loss check's
    # one when it restarts empty, ours), none naming a request, no traceback.
    noted = [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line]
    assert len(noted) <= 10 < failed, noted
    assert "/during/" not in output and "Traceback" not in output


def test_the_worker_logs_an_outage_once_with_summaries_and_its_end(fresh_redis_server):
    # The ordering sweep runs every ordering timeout / 4: 0.1 s here, failing all outage long.
    args = ("--outage-summary-interval", "0.5", "--ordering-timeout", "0.4")
    with _worker(fresh_redis_server.url, *args) as worker:
        fresh_redis_server.kill()
        worker.wait_for("channel layer unavailable: ", 15)
        worker.wait_for(r"channel layer still unavailable after \d+ s: \d+ ordering sweeps failed", 15)
        worker.wait_for(r"channel layer still unavailable after \d+ s: \d+ ordering sweeps failed", 15)
        fresh_redis_server.start()
        worker.wait_for("channel layer available again after", 30)
        worker.signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        output = worker.output
    assert output.count("channel layer unavailable: ") == 1
    assert "Traceback" not in output and "ERROR" not in output


def test_websockets_failing_during_an_outage_log_no_line_each(fresh_redis_server):
    import asyncio

    import websockets

    url = fresh_redis_server.url + "?prefix=wsout"
    echo = TelexProcess(
        ["worker", "examples.echo.routing:channel_routing", "--layer", url], ready="listening on"
    )
    with TelexServer(url) as server, echo:

        async def sockets() -> list[int]:
            opened = [await websockets.connect(f"ws://127.0.0.1:{server.port}/{i}") for i in range(20)]
            for ws in opened:
                await ws.send("before")
                assert await asyncio.wait_for(ws.recv(), 10) == "before"
            fresh_redis_server.kill()
            codes = []
            for ws in opened:
                await ws.send("during")
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 30)
                codes.append(closed.value.rcvd.code)
            return codes

        assert asyncio.run(sockets()) == [1011] * 20
        server.wait_for("channel layer unavailable: ")
        output = server.output
    noted = [line for line in output.splitlines() if "ERROR" in line]
    assert not noted, noted
    assert "could not send websocket.receive" not in output
