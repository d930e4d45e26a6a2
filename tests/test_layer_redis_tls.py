"""The Redis layer over ``rediss://``: real TLS on both the thread and asyncio connections."""

from __future__ import annotations

import asyncio
import threading
from urllib.parse import quote

import pytest

from telex.layers import get_channel_layer
from telex.layers.redis import RedisUnavailable
from tests.support.certs import make_ca, make_server_cert
from tests.support.tls_proxy import TlsProxy


@pytest.fixture
def tls_redis(redis_server, tmp_path):
    ca = make_ca()
    ca_path, _ = ca.write(str(tmp_path), "ca")
    certfile, keyfile = make_server_cert(ca).write(str(tmp_path), "server")
    with TlsProxy(redis_server.port, certfile, keyfile) as proxy:
        yield proxy, ca_path, tmp_path


def test_send_and_receive_over_tls_on_threads_and_on_a_loop(tls_redis):
    proxy, ca_path, _ = tls_redis
    layer = get_channel_layer(f"rediss://127.0.0.1:{proxy.port}/0?prefix=tls:&ssl_ca_certs={quote(ca_path)}")
    layer.send("plain", {"bytes": b"\x00\xff", "text": "caf\u00e9"})
    assert layer.receive(["plain"]) == ("plain", {"bytes": b"\x00\xff", "text": "caf\u00e9"})
    layer.group_add("room", "member")
    layer.send_group("room", {"n": 1})
    assert layer.receive(["member"], block=True) == ("member", {"n": 1})

    # A blocking receive waiting inside Redis (BLPOP over TLS), woken by another thread's send.
    got = []
    waiter = threading.Thread(target=lambda: got.append(layer.receive(["wake?"], block=True)))
    waiter.start()
    layer.send("wake?", {"n": 2})
    waiter.join(10)
    assert got == [("wake?", {"n": 2})]

    async def on_loop() -> list:
        waiting = asyncio.ensure_future(layer.receive_async(["async"]))
        await layer.send_async("async", {"n": 3})
        first = await asyncio.wait_for(waiting, 10)
        for n in range(4, 7):
            await layer.send_async("async", {"n": n})
        return [first, *await layer.receive_batch_async(["async"], 10)]

    assert asyncio.run(on_loop()) == [("async", {"n": n}) for n in range(3, 7)]
    layer.close()


def test_a_certificate_from_another_ca_is_refused_with_a_clear_error(tls_redis):
    proxy, _, tmp_path = tls_redis
    stranger, _ = make_ca("Someone Else").write(str(tmp_path), "other-ca")
    layer = get_channel_layer(f"rediss://127.0.0.1:{proxy.port}/0?ssl_ca_certs={quote(stranger)}")
    with pytest.raises(RedisUnavailable, match="certificate verify failed"):
        layer.send("c", {"n": 1})

    async def on_loop() -> None:
        await layer.send_async("c", {"n": 1})

    with pytest.raises(RedisUnavailable, match="certificate verify failed"):
        asyncio.run(on_loop())
    layer.close()
