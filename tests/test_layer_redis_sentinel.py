"""The Redis layer behind a real Sentinel: discovery, and a failover mid-use.

A master, its replica and one Sentinel (quorum 1) are real redis-server
processes on loopback. ``SENTINEL FAILOVER`` promotes the replica without
waiting for the master to die; the old master is turned into a replica, so
connections still open to it get ``READONLY`` replies, which the layer's
sync and asyncio connections must answer by asking the Sentinel again.
"""

from __future__ import annotations

import asyncio

import pytest
import redis

from telex.layers import get_channel_layer
from telex.layers.redis import RedisUnavailable
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

MASTER = "telexmaster"


@pytest.fixture
def sentinel_set():
    master = RedisServer()
    master.start()
    replica = RedisServer(replica_of=master)
    sentinel = RedisServer(monitor={"name": MASTER, "port": master.port})
    try:
        replica.start()
        sentinel.start()
        watcher = redis.Redis(host="127.0.0.1", port=sentinel.port, decode_responses=True)
        replica_client = redis.Redis(host="127.0.0.1", port=replica.port, decode_responses=True)
        # Failover needs a replica in sync that the Sentinel knows about.
        assert wait_until(lambda: replica_client.info("replication")["master_link_status"] == "up", 20)
        assert wait_until(lambda: watcher.sentinel_slaves(MASTER), 20)
        yield master, replica, sentinel, watcher
        watcher.close()
        replica_client.close()
    finally:
        for server in (sentinel, replica, master):
            server.stop()


def master_port(watcher: redis.Redis) -> int:
    return int(watcher.sentinel_get_master_addr_by_name(MASTER)[1])


def retry(call, timeout: float = 20.0):
    """Call until the layer reaches the new master; outages in between are expected."""
    outcome = []

    def attempt() -> bool:
        try:
            outcome.append(call())
        except RedisUnavailable:
            return False
        return True

    assert wait_until(attempt, timeout, 0.05)
    return outcome[-1]


def test_layer_finds_the_master_and_follows_a_failover(sentinel_set):
    master, replica, sentinel, watcher = sentinel_set
    layer = get_channel_layer(f"redis+sentinel://127.0.0.1:{sentinel.port}/{MASTER}/0")
    assert master_port(watcher) == master.port

    layer.send("before", {"n": 1})
    assert layer.receive(["before"]) == ("before", {"n": 1})
    layer.group_add("room", "member")

    # One loop throughout, so its pipelined connection is the one that meets the failover.
    loop = asyncio.new_event_loop()

    async def round_trip(channel: str, message: dict) -> tuple:
        deadline = loop.time() + 20
        while True:
            try:
                await layer.send_async(channel, message)
                break
            except RedisUnavailable:
                assert loop.time() < deadline, "the asyncio connection never reached the new master"
                await asyncio.sleep(0.05)
        return await layer.receive_async([channel])

    assert loop.run_until_complete(round_trip("async-before", {"n": 2})) == ("async-before", {"n": 2})

    watcher.execute_command("SENTINEL", "FAILOVER", MASTER)
    assert wait_until(lambda: master_port(watcher) == replica.port, 30)
    old_master = redis.Redis(host="127.0.0.1", port=master.port, decode_responses=True)
    assert wait_until(lambda: old_master.info("replication")["role"] == "slave", 30)
    old_master.close()

    # The same thread's connection still points at the old master: it gets
    # READONLY, reconnects through the Sentinel, and the next send lands.
    retry(lambda: layer.send("after", {"n": 3}))
    promoted = redis.Redis(host="127.0.0.1", port=replica.port)
    assert promoted.llen("telex:q:after") == 1
    assert layer.receive(["after"]) == ("after", {"n": 3})
    # Group membership was replicated before the failover.
    layer.send_group("room", {"n": 4})
    assert layer.receive(["member"]) == ("member", {"n": 4})

    assert loop.run_until_complete(round_trip("async-after", {"n": 5})) == ("async-after", {"n": 5})
    assert promoted.llen("telex:q:async-after") == 0
    loop.close()
    promoted.close()
    layer.close()
