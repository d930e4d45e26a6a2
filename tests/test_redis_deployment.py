"""The production shape (S4): ``telex serve`` and ``telex worker`` as separate
processes, talking through a real redis-server."""

from __future__ import annotations

import pytest

from tests.support.http import request
from tests.support.processes import TelexProcess, TelexServer, run_telex
from tests.support.redis_server import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.redis

HELLO = "examples.hello_http.routing:channel_routing"


def _worker(url, routing=HELLO, *extra):
    return TelexProcess(["worker", routing, "--layer", url, *extra], ready="listening on")


def test_serve_and_a_separate_worker_answer_through_redis(redis_server):
    url = redis_server.url + "?prefix=deploy1"
    with TelexServer(url) as server, _worker(url):
        server.wait_for("asyncio bridge")
        status, _, body = request(server, "GET", "/through/redis")
        assert status == 200 and body == b"Hello world! You asked for /through/redis"


def test_adding_workers_shares_the_load_and_restarting_one_loses_nothing(redis_server):
    url = redis_server.url + "?prefix=deploy2"
    with TelexServer(url) as server, _worker(url):
        with _worker(url) as second:
            bodies = {request(server, "GET", f"/n/{i}")[2] for i in range(30)}
            second.stop()
        bodies |= {request(server, "GET", f"/m/{i}")[2] for i in range(10)}
        assert len(bodies) == 40


def test_http_serving_resumes_after_redis_restarts(fresh_redis_server):
    url = fresh_redis_server.url + "?prefix=deploy3"
    with TelexServer(url, "-t", "5") as server, _worker(url):
        assert request(server, "GET", "/before")[0] == 200
        fresh_redis_server.kill()
        status, _, body = request(server, "GET", "/during")
        assert status == 503 and b"Traceback" not in body
        fresh_redis_server.start()
        assert wait_until(lambda: request(server, "GET", "/after")[0] == 200, timeout=30)


def test_redis_unreachable_at_start_is_one_line_and_non_zero():
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run_telex(["serve", url, "-p", str(free_port())])
    assert result.returncode != 0
    assert "channel layer unreachable" in result.stderr and "Traceback" not in result.stderr


def test_websockets_are_closed_with_1012_when_redis_loses_its_data(redis_server):
    import asyncio

    import redis as redis_py
    import websockets

    url = redis_server.url + "?prefix=deploy4"
    with (
        TelexServer(url, "--layer-check-interval", "0.2") as server,
        _worker(url, "examples.echo.routing:channel_routing"),
    ):

        async def session():
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as socket:
                await socket.send("still here")
                assert await asyncio.wait_for(socket.recv(), 10) == "still here"
                redis_py.Redis(host=redis_server.host, port=redis_server.port).flushall()
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(socket.recv(), 15)
                return closed.value.rcvd.code

        assert asyncio.run(session()) == 1012
        server.wait_for("lost its data")
