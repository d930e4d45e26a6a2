"""The Redis layer against the layer contract, plus the rules that are its own.

Every test runs on real redis-server processes (``tests/support/redis_server.py``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import redis

from telex.layers import ChannelFull, LayerSpecError, get_channel_layer
from telex.layers.redis import RedisChannelLayer, RedisUnavailable
from tests.layer_contract import LayerContract, check_receive_twisted_woken_by_thread, run_script
from tests.support.redis_server import RedisServer, unique_prefix
from tests.support.waiting import wait_until

pytestmark = pytest.mark.redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def make_layer(redis_server, layers):
    def make(**kwargs) -> RedisChannelLayer:
        return layers(hosts=[redis_server.url], **kwargs)

    return make


@pytest.fixture
def sharded(redis_shards, layers):
    def make(**kwargs) -> RedisChannelLayer:
        return layers(hosts=[server.url for server in redis_shards], **kwargs)

    return make


def raw(server: RedisServer) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port)


def keys_on(server: RedisServer, layer: RedisChannelLayer) -> set[str]:
    return {key.decode() for key in raw(server).scan_iter(match=layer.prefix + "*")}


def commands_called(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(
        value["calls"] for name, value in stats.items() if name not in ("cmdstat_info", "cmdstat_config")
    )


class TestRedisLayer(LayerContract):
    pass


# -- storage ---------------------------------------------------------------------


def test_a_send_is_one_evalsha_that_stores_the_message_once(fresh_redis_server, layers):
    layer = layers(hosts=[fresh_redis_server.url])
    layer.send("warm", {})  # loads the script (NOSCRIPT → SCRIPT LOAD) once
    layer.receive(["warm"])
    client = raw(fresh_redis_server)
    client.config_resetstat()
    layer.send("http.request", {"path": "/", "body": b"x"})
    stats = client.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 1
    assert stats["cmdstat_rpush"]["calls"] == 1
    assert "cmdstat_set" not in stats
    assert client.llen(layer.prefix + "q:http.request") == 1


def test_a_send_and_receive_costs_at_most_five_redis_commands(fresh_redis_server, layers):
    layer = layers(hosts=[fresh_redis_server.url])
    layer.send("warm", {})
    layer.receive(["warm"])
    client = raw(fresh_redis_server)
    client.config_resetstat()
    for i in range(100):
        layer.send("http.request", {"i": i})
        assert layer.receive(["http.request"]) == ("http.request", {"i": i})
    assert commands_called(client) / 100 <= 5


def test_capacity_is_exact_with_senders_in_several_processes(redis_server, make_layer):
    layer = make_layer(capacity=60)
    sender = (
        "import sys\n"
        "from telex.layers import ChannelFull\n"
        "from telex.layers.redis import RedisChannelLayer\n"
        "layer = RedisChannelLayer(hosts=[sys.argv[1]], prefix=sys.argv[2], capacity=60)\n"
        "sent = 0\n"
        "for i in range(50):\n"
        "    try:\n"
        "        layer.send('contended', {'i': i})\n"
        "        sent += 1\n"
        "    except ChannelFull:\n"
        "        pass\n"
        "print(sent)\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", sender, redis_server.url, layer.prefix],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    sent = [int(process.communicate(timeout=60)[0]) for process in processes]
    assert sum(sent) == 60
    assert raw(redis_server).llen(layer.prefix + "q:contended") == 60
    with pytest.raises(ChannelFull):
        layer.send("contended", {})


def test_expired_messages_do_not_count_against_capacity(make_layer):
    layer = make_layer(capacity=2, expiry=0.3)
    layer.send("c", {"old": 1})
    layer.send("c", {"old": 2})
    with pytest.raises(ChannelFull):
        layer.send("c", {"new": 0})
    time.sleep(0.4)  # time itself is what is tested
    layer.send("c", {"new": 1})
    layer.send("c", {"new": 2})
    assert [layer.receive(["c"])[1] for _ in range(3)] == [{"new": 1}, {"new": 2}, None]


def test_every_send_sets_its_queue_list_to_outlive_the_message_by_a_second(redis_server, make_layer):
    layer = make_layer(capacity=2, expiry=0.3)
    client, key = raw(redis_server), layer.prefix + "q:c"
    layer.send("c", {"n": 1})  # the push that makes the list
    assert 0 < client.pttl(key) <= 1300
    client.pexpire(key, 100_000)
    layer.send("c", {"n": 2})  # a push onto a list that was there
    assert 0 < client.pttl(key) <= 1300
    client.pexpire(key, 100_000)
    time.sleep(0.4)  # both expire: the next push overflows and drops them
    layer.send("c", {"n": 3})
    assert 0 < client.pttl(key) <= 1300
    assert [layer.receive(["c"])[1] for _ in range(2)] == [{"n": 3}, None]


def test_receive_batch_nowait_takes_several_messages_in_one_round_trip(make_layer):
    layer = make_layer()
    for i in range(5):
        layer.send("proc!a", {"i": i})
    assert layer.receive_batch_nowait(["proc!"], max_messages=3) == [("proc!a", {"i": i}) for i in range(3)]
    rest = [("proc!a", {"i": i}) for i in range(3, 5)]
    assert layer.receive_batch_nowait(["proc!"], max_messages=10) == rest


def test_flush_removes_only_keys_under_its_own_prefix(redis_server, make_layer):
    mine, theirs = make_layer(), make_layer()
    raw(redis_server).set("unrelated", "kept")
    for layer in (mine, theirs):
        layer.send("c", {})
        layer.group_add("g", "c")
        layer.store_set("s", {"v": 1})
    mine.flush()
    assert keys_on(redis_server, mine) == set()
    assert theirs.receive(["c"]) == ("c", {})
    assert theirs.group_channels("g") == ["c"]
    assert theirs.store_get("s") == {"v": 1}
    assert raw(redis_server).get("unrelated") == b"kept"


def test_group_members_expire_one_by_one(make_layer):
    layer = make_layer(group_expiry=1)
    layer.group_add("g", "early")
    time.sleep(0.6)  # time itself is what is tested
    layer.group_add("g", "late")
    assert wait_until(lambda: layer.group_channels("g") == ["late"], timeout=3)


def test_send_group_is_one_round_trip_whatever_its_size(fresh_redis_server, layers):
    layer = layers(hosts=[fresh_redis_server.url])
    for i in range(200):
        layer.group_add("big", f"member{i}")
    layer.send("full", {})
    layer.send_group("warm", {})
    client = raw(fresh_redis_server)
    client.config_resetstat()
    layer.send_group("big", {"text": "hi"})
    stats = client.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 1
    assert stats["cmdstat_rpush"]["calls"] == 200  # normal channels: one entry each
    assert layer.receive(["member199"]) == ("member199", {"text": "hi"})


def test_a_group_send_to_many_sockets_on_one_server_is_one_entry(fresh_redis_server, layers):
    layer = layers(hosts=[fresh_redis_server.url], process_local_capacity=10)
    for prefix in ("srv.a!", "srv.b!", "srv.c!"):
        for i in range(300):
            layer.group_add("big", f"{prefix}{i}")
    layer.group_add("big", "plain")
    layer.send_group("warm", {})  # loads the script
    client = raw(fresh_redis_server)
    client.config_resetstat()
    layer.send_group("big", {"text": "hi"})
    stats = client.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 1
    assert stats["cmdstat_rpush"]["calls"] == 4  # three servers and one normal channel
    for prefix in ("srv.a!", "srv.b!", "srv.c!"):
        assert client.llen(layer.prefix + "q:" + prefix) == 1
        found = layer.receive_batch_nowait([prefix], 1000)
        assert sorted(channel for channel, _ in found) == sorted(f"{prefix}{i}" for i in range(300))
    assert layer.receive(["plain"]) == ("plain", {"text": "hi"})


@pytest.mark.parametrize("shards", [1, 3], ids=["one-shard-script", "per-shard-script"])
def test_a_large_group_costs_commands_per_server_not_per_member(redis_shards, layers, shards):
    # 5,000 sockets on one server: five entries of 1,000 names, in one RPUSH.
    servers = redis_shards[:shards]
    layer = layers(hosts=[server.url for server in servers])
    for i in range(5000):
        layer.group_add("huge", f"srv.z!{i}")
    layer.send_group("warm", {})
    clients = [raw(server) for server in servers]
    for client in clients:
        client.config_resetstat()
    layer.send_group("huge", {"text": "hi"})
    rpush = sum(c.info("commandstats").get("cmdstat_rpush", {}).get("calls", 0) for c in clients)
    assert rpush == 1
    found = []
    while batch := layer.receive_batch_nowait(["srv.z!"], 1000):
        found += batch
    assert sorted(channel for channel, _ in found) == sorted(f"srv.z!{i}" for i in range(5000))


def test_a_full_server_queue_takes_the_parts_of_a_group_that_fit_and_counts_the_rest(make_layer):
    layer = make_layer(process_local_capacity=3, group_entry_members=10)
    layer.send("srv.y!first", {})
    for i in range(50):
        layer.group_add("g", f"srv.y!{i}")
    layer.send_group("g", {"n": 1})  # five entries of 10 names; room for two
    assert layer.global_statistics()["group_undelivered_count"] == 30
    found = []
    while batch := layer.receive_batch_nowait(["srv.y!"], 100):
        found += batch
    assert len(found) == 1 + 20


def test_a_group_entry_expands_on_every_receive_path(make_layer):
    """Blocking, non-blocking, batch and async receives each hand out part of one entry, in order.

    (``receive_twisted`` is ``receive_async`` on the asyncio reactor and a
    blocking ``receive`` in a thread on others.)
    """
    layer = make_layer()
    members = [f"srv!{i:02}" for i in range(12)]
    for name in members:
        layer.group_add("g", name)
    layer.send_group("g", {"n": 1})
    layer.send("srv!last", {"n": 2})
    got = [layer.receive(["srv!"], block=True)]
    got.append(layer.receive(["srv!"]))
    got += layer.receive_batch_nowait(["srv!"], 3)

    async def on_loop():
        found = [await layer.receive_async(["srv!"])]
        return found + await layer.receive_batch_async(["srv!"], 4)

    got += asyncio.run(on_loop())
    got += [layer.receive(["srv!"], block=True) for _ in range(3)]
    assert sorted(channel for channel, _ in got[:12]) == members
    assert all(message == {"n": 1} for _, message in got[:12])
    assert got[12] == ("srv!last", {"n": 2})
    assert layer.receive(["srv!"]) == (None, None)


def test_a_group_entry_popped_by_a_blocked_receive_is_expanded(make_layer):
    layer = make_layer(blocking_timeout=5)
    for name in ("srv!a", "srv!b", "srv!c"):
        layer.group_add("g", name)
    found: list = []
    receiving = threading.Thread(target=lambda: found.append(layer.receive(["srv!", "other"], block=True)))
    receiving.start()
    assert wait_until(lambda: raw_clients_blocked(layer) >= 1, timeout=5)
    layer.send_group("g", {"n": 1})
    receiving.join(10)
    found += [layer.receive(["srv!"]) for _ in range(3)]
    assert sorted(channel for channel, _ in found[:3]) == ["srv!a", "srv!b", "srv!c"]
    assert found[3] == (None, None)


def raw_clients_blocked(layer: RedisChannelLayer) -> int:
    return layer._threads.call(0, b"INFO", b"clients").count(b"blocked_clients:1")


def test_encrypted_group_entries_are_decrypted_once_and_expand(make_layer):
    layer = make_layer(symmetric_encryption_keys=["secret"])
    for i in range(5):
        layer.group_add("g", f"srv!{i}")
    layer.send_group("g", {"text": "private"})
    found = layer.receive_batch_nowait(["srv!"], 10)
    assert sorted(found) == [(f"srv!{i}", {"text": "private"}) for i in range(5)]


def test_an_entry_in_a_format_this_version_cannot_read_is_refused_loudly(redis_server, make_layer, caplog):
    layer = make_layer()
    key = layer.prefix + "q:srv!"
    future = b"%013d" % (int(time.time() * 1000) + 60_000) + b"#2srv! a b\nsomething new"
    raw(redis_server).rpush(key, future)
    layer.send("srv!x", {"n": 1})
    with caplog.at_level(logging.ERROR, logger="telex.layers"):
        assert layer.receive(["srv!"]) == ("srv!x", {"n": 1})
        raw(redis_server).rpush(key, future)
        assert layer.receive(["srv!"]) == (None, None)
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1  # once per burst, not per entry
    assert "group entry format '2'" in errors[0].getMessage()
    assert "upgrade this process" in errors[0].getMessage()
    assert layer.global_statistics()["unreadable_entry_count"] == 2


def test_an_older_reader_fails_on_a_group_entry_rather_than_misdeliver_it(make_layer):
    """What docs/redis-layer.md says a reader from before group entries does with one."""
    import msgpack

    layer = make_layer()
    layer.group_add("g", "srv!a")
    layer.send_group("g", {"n": 1})
    entry = layer._threads.call(0, b"LPOP", layer.prefix + "q:srv!")
    space = entry.index(b" ", 13)  # how a reader before group entries splits an entry
    assert entry[13:space] == b"#1srv!"
    with pytest.raises(msgpack.ExtraData):
        msgpack.unpackb(entry[space + 1 :], raw=False)


# -- URLs and options -------------------------------------------------------------


def test_url_options_and_database():
    layer = RedisChannelLayer.from_url(
        "redis://:secret@127.0.0.1:6390/3?capacity=5&prefix=app:&expiry=30&symmetric_encryption_keys=a,b"
    )
    assert layer.hosts == ["127.0.0.1:6390/3"]
    assert (layer.capacity, layer.prefix, layer.expiry) == (5, "app:", 30)
    assert layer.shards[0].url == "redis://:secret@127.0.0.1:6390/3"


def test_url_with_a_comma_separated_host_list_makes_shards():
    layer = RedisChannelLayer.from_url("rediss://:pw@a:1,b:2,c/1")
    assert layer.hosts == ["a:1/1", "b:2/1", "c:6379/1"]
    assert all(shard.url.startswith("rediss://:pw@") for shard in layer.shards)


def test_sentinel_url_and_hosts_entry_name_the_master():
    layer = get_channel_layer("redis+sentinel://s1:26379,s2/mymaster/2")
    assert layer.hosts == ["sentinel:mymaster/2"]
    assert layer.shards[0].sentinel["sentinels"] == [("s1", 26379), ("s2", 26379)]
    layer = RedisChannelLayer(hosts=[{"sentinels": [("s", 26379)], "master_name": "m"}])
    assert layer.hosts == ["sentinel:m/0"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://localhost/0?colour=blue", "unknown option 'colour'"),
        ("redis://localhost/0?capacity=many", "capacity='many'.*must be int"),
        ("redis://localhost/0?blocking_timeout=20", "socket_timeout .* must be longer"),
        ("redis+sentinel://s1/", "needs the master name"),
    ],
)
def test_bad_urls_fail_with_a_message_naming_the_problem(url, message):
    with pytest.raises(LayerSpecError, match=message):
        get_channel_layer(url)


def test_unix_socket_url_with_database():
    with RedisServer(unix_socket=True) as server:
        layer = get_channel_layer(f"unix://{server.unix_socket}?db=2&prefix=u:")
        try:
            layer.send("c", {"via": "unix"})
            assert redis.Redis(unix_socket_path=server.unix_socket, db=2).llen("u:q:c") == 1
            assert layer.receive(["c"]) == ("c", {"via": "unix"})
        finally:
            layer.close()


# -- sharding ---------------------------------------------------------------------


def test_normal_channels_spread_over_every_shard_and_receivers_read_all(redis_shards, sharded):
    layer = sharded(capacity=1000)
    for i in range(30):
        layer.send("spread", {"i": i})
    counts = [raw(server).llen(layer.prefix + "q:spread") for server in redis_shards]
    assert all(count == 10 for count in counts)
    received = [layer.receive(["spread"])[1]["i"] for _ in range(30)]
    assert sorted(received) == list(range(30))
    assert layer.receive(["spread"]) == (None, None)


def test_pinned_channels_and_groups_land_on_the_same_shard_in_every_process(redis_shards, sharded):
    layer = sharded()
    reordered = RedisChannelLayer(
        hosts=[server.url for server in reversed(redis_shards)], prefix=layer.prefix
    )
    names = [f"daphne.response.{i}!" for i in range(30)] + [f"http.request.body?{i}" for i in range(30)]
    for name in names:
        layer.send(name + ("x" if name.endswith("!") else ""), {"n": name})
    homes = {}
    for index, server in enumerate(redis_shards):
        for key in keys_on(server, layer):
            homes[key.removeprefix(layer.prefix + "q:")] = layer.hosts[index]
    assert set(homes) == set(names)
    assert len(set(homes.values())) == 3  # they spread over all three
    for name in names:
        assert reordered.hosts[reordered._ring.shard_of(name)] == homes[name]
        assert reordered.receive([name])[1] == {"n": name}
    reordered.close()


def test_process_specific_channels_stay_in_order_across_shards(sharded):
    layer = sharded()
    for i in range(20):
        layer.send(f"proc.A!{i % 3}", {"i": i})
    assert [layer.receive(["proc.A!", "other"])[1]["i"] for _ in range(20)] == list(range(20))


def test_blocking_receive_waits_on_every_shard_at_once(redis_shards, sharded):
    layer = sharded()
    names = ["a?1", "b?2", "c?3", "d?4", "e?5", "f?6"]
    shards = {layer._ring.shard_of(name) for name in names}
    assert len(shards) > 1
    for name in names:
        result: list = []
        started = time.monotonic()
        thread = threading.Thread(target=lambda out=result: out.append(layer.receive(names, block=True)))
        thread.start()
        assert wait_until(lambda: sum(raw(s).info("clients")["blocked_clients"] for s in redis_shards) >= 2)
        layer.send(name, {"to": name})
        thread.join(5)
        assert result == [(name, {"to": name})]
        assert time.monotonic() - started < layer.blocking_timeout
    # No BLPOP outlives its receive.
    assert wait_until(lambda: sum(raw(s).info("clients")["blocked_clients"] for s in redis_shards) == 0)


def test_send_group_reaches_members_on_every_shard(sharded):
    layer = sharded()
    members = [f"member{i}?x" for i in range(12)] + ["plain", "proc!one"]
    for member in members:
        layer.group_add("room", member)
    layer.send_group("room", {"hello": True})
    for member in members:
        assert layer.receive([non_local(member)]) == (member, {"hello": True})


def non_local(name: str) -> str:
    return name[: name.index("!") + 1] if "!" in name else name


def test_ordering_requeues_to_a_channel_pinned_on_another_shard(sharded):
    layer = sharded()
    key = "order.sock"
    home = layer._ring.shard_of(key)
    channel = next(f"reply{i}?" for i in range(50) if layer._ring.shard_of(f"reply{i}?") != home)
    assert layer.ordering_claim(key, 1, channel, {"order": 1}) == "park"
    layer.ordering_advance(key, 0)
    assert layer.receive([channel]) == (channel, {"order": 1})


# -- cancellation -------------------------------------------------------------------


async def blocked(servers: list[RedisServer], count: int) -> None:
    """Wait (bounded) until Redis reports ``count`` blocked clients."""
    for _ in range(500):
        if sum(raw(server).info("clients")["blocked_clients"] for server in servers) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("receive never blocked in Redis")


@pytest.mark.parametrize("topology", ["one", "three"])
def test_a_receive_cancelled_after_redis_popped_loses_no_message(
    topology, redis_server, redis_shards, layers
):
    servers = [redis_server] if topology == "one" else redis_shards
    layer = layers(hosts=[server.url for server in servers])
    sender = layers(hosts=[server.url for server in servers], prefix=layer.prefix)

    async def main():
        for n in range(5):
            task = asyncio.ensure_future(layer.receive_async(["other", "proc!"]))
            await blocked(servers, len(servers))
            # Redis serves the blocked BLPOP before this send returns, so the
            # message is popped; the reply is still unread when we cancel.
            sender.send("proc!x", {"n": n})
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await layer.receive_async(["other", "proc!"]) == ("proc!x", {"n": n})
        return layer.receive(["proc!"])

    assert asyncio.run(main()) == (None, None)


# -- encryption -------------------------------------------------------------------


def test_encrypted_messages_round_trip_and_are_unreadable_in_redis(redis_server, make_layer):
    layer = make_layer(symmetric_encryption_keys=["secret"])
    layer.send("c", {"text": "very-private-words", "bytes": b"raw-private-bytes"})
    stored = raw(redis_server).lindex(layer.prefix + "q:c", 0)
    assert b"private" not in stored
    assert layer.receive(["c"]) == ("c", {"text": "very-private-words", "bytes": b"raw-private-bytes"})
    layer.store_set("session", {"user": "private-name"})
    assert b"private" not in raw(redis_server).get(layer.prefix + "s:session")
    assert layer.store_get("session") == {"user": "private-name"}


def test_rotated_keys_decrypt_messages_sealed_with_the_old_key(make_layer):
    old = make_layer(symmetric_encryption_keys=["old"])
    new = make_layer(symmetric_encryption_keys=["new", "old"], prefix=old.prefix)
    old.send("c", {"n": 1})
    assert new.receive(["c"]) == ("c", {"n": 1})


def test_a_message_no_key_decrypts_is_dropped_with_a_log_line(make_layer, caplog):
    writer = make_layer(symmetric_encryption_keys=["one"])
    reader = make_layer(symmetric_encryption_keys=["two"], prefix=writer.prefix)
    writer.send("c", {"lost": True})
    reader.send("c", {"kept": True})
    with caplog.at_level(logging.WARNING, logger="telex.layers.redis"):
        assert reader.receive(["c"]) == ("c", {"kept": True})
    assert "none of the symmetric_encryption_keys decrypts" in caplog.text


# -- outages ------------------------------------------------------------------------


def test_the_layer_reconnects_after_redis_restarts(fresh_redis_server, layers):
    layer = layers(hosts=[fresh_redis_server.url], blocking_timeout=1, socket_connect_timeout=1)
    layer.send("c", {"before": True})
    assert layer.receive(["c"]) == ("c", {"before": True})
    fresh_redis_server.kill()
    with pytest.raises(RedisUnavailable, match=r"127\.0\.0\.1:\d+/0 is unavailable"):
        layer.send("c", {})
    with pytest.raises(RedisUnavailable):
        layer.receive(["c"])
    # Worker loops call blocking receives: those pause and return, never raise.
    assert layer.receive(["c"], block=True) == (None, None)
    assert asyncio.run(layer.receive_async(["c"])) == (None, None)
    fresh_redis_server.start()
    layer.send("c", {"after": True})
    assert layer.receive(["c"], block=True) == ("c", {"after": True})


def test_a_take_skips_a_shard_that_is_down_on_threads_and_on_event_loops(
    redis_shards, fresh_redis_server, layers
):
    # docs/redis-layer.md, Outages: a take reads the shards that answer and
    # raises (or, blocking, pauses) only when none of them had a message.
    down = fresh_redis_server
    layer = layers(
        hosts=[redis_shards[0].url, redis_shards[1].url, down.url],
        blocking_timeout=0.5,
        socket_connect_timeout=1,
    )
    down.kill()

    def fill() -> None:
        for n in range(6):
            layer.send("spread", {"n": n})  # a normal channel's send passes over the shard that is down

    # Three takes in a row start at each of the three shards once.
    fill()
    assert [len(layer.receive_batch_nowait(["spread"], 2)) for _ in range(3)] == [2, 2, 2]
    with pytest.raises(RedisUnavailable):
        layer.receive_batch_nowait(["spread"], 2)
    fill()
    assert [layer.receive(["spread"], block=True)[0] for _ in range(3)] == ["spread"] * 3

    async def on_a_loop() -> tuple[list[int], list, list]:
        fill()
        sizes = [len(await layer.receive_batch_async(["spread"], 2)) for _ in range(3)]
        singles = [(await layer.receive_async(["spread"]))[0] for _ in range(3)]
        return sizes, singles, await layer.receive_batch_async(["spread"], 2)

    sizes, singles, nothing = asyncio.run(on_a_loop())
    assert sizes == [2, 2, 2]
    assert singles == ["spread"] * 3
    assert nothing == []  # none waiting and a shard down: a pause, then an empty batch


def test_a_redis_that_lost_its_data_is_detected_once(fresh_redis_server, layers):
    layer = layers(hosts=[fresh_redis_server.url])
    assert layer.check_data_lost() is False  # arms the check
    assert layer.check_data_lost() is False
    fresh_redis_server.kill()
    with pytest.raises(RedisUnavailable):
        layer.check_data_lost()
    fresh_redis_server.start()
    assert layer.check_data_lost() is True
    assert layer.check_data_lost() is False
    assert asyncio.run(layer.check_data_lost_async()) is False


# -- twisted ------------------------------------------------------------------------


def test_receive_twisted_is_woken_by_a_send_from_another_thread(redis_server):
    check_receive_twisted_woken_by_thread(f"{redis_server.url}?prefix={unique_prefix()}", ROOT)


ASYNCIO_REACTOR_SCRIPT = r"""
import sys, threading
from twisted.internet import asyncioreactor
asyncioreactor.install()
from twisted.internet import reactor, defer
from telex.layers import get_channel_layer

layer = get_channel_layer(sys.argv[1])
result = []

@defer.inlineCallbacks
def main():
    # A cancelled wait on the reactor's loop gives its message back.
    waiting = layer.receive_twisted(["wake"])
    layer.send("wake", {"n": 1})
    waiting.cancel()
    waiting.addErrback(lambda failure: failure.trap(defer.CancelledError))
    result.append((yield layer.receive_twisted(["wake"])))
    threading.Timer(0.1, layer.send, args=("wake", {"n": 2})).start()
    result.append((yield layer.receive_twisted(["wake"])))
    reactor.stop()

reactor.callWhenRunning(main)
reactor.callLater(20, reactor.stop)
reactor.run()
print(result)
"""


def test_receive_twisted_runs_on_the_asyncio_reactor_and_cancels_safely(redis_server):
    output = run_script(ASYNCIO_REACTOR_SCRIPT, f"{redis_server.url}?prefix={unique_prefix()}", cwd=ROOT)
    assert output.strip() == "[('wake', {'n': 1}), ('wake', {'n': 2})]"


THREAD_REACTOR_CANCEL_SCRIPT = r"""
import sys
from twisted.internet import reactor, defer
from telex.layers import get_channel_layer

layer = get_channel_layer(sys.argv[1])
result = []

@defer.inlineCallbacks
def main():
    # On a reactor without asyncio the wait runs in a thread; a message it
    # takes after the Deferred was cancelled goes back to the channel.
    waiting = layer.receive_twisted(["wake"])
    waiting.addErrback(lambda failure: failure.trap(defer.CancelledError))
    waiting.cancel()
    layer.send("wake", {"n": 1})
    result.append((yield layer.receive_twisted(["wake"])))
    reactor.stop()

reactor.callWhenRunning(main)
reactor.callLater(20, reactor.stop)
reactor.run()
print(result)
"""


def test_receive_twisted_in_a_thread_gives_back_what_it_took_after_cancellation(redis_server):
    output = run_script(
        THREAD_REACTOR_CANCEL_SCRIPT, f"{redis_server.url}?prefix={unique_prefix()}", cwd=ROOT
    )
    assert output.strip() == "[('wake', {'n': 1})]"


def test_send_async_sends_in_order_on_the_running_loop(redis_server):
    layer = RedisChannelLayer.from_url(redis_server.url + "?prefix=sendasync")

    async def main():
        for i in range(20):
            await layer.send_async("ordered", {"i": i})

    asyncio.run(main())
    assert [layer.receive(["ordered"])[1]["i"] for _ in range(20)] == list(range(20))
    layer.close()


# -- hot paths (docs/redis-layer.md, Performance) --------------------------------------


#: The two asyncio sends: a coroutine, and a future settled by the reply (the server's).
ASYNC_SENDS = pytest.mark.parametrize("send", ["send_async", "send_soon"])


@ASYNC_SENDS
def test_concurrent_async_sends_share_round_trips_and_each_gets_its_own_outcome(redis_server, layers, send):
    layer = layers(hosts=[redis_server.url], capacity=3)
    client = raw(redis_server)

    async def main():
        await getattr(layer, send)("warm", {})  # connects and loads the script
        reads = client.info("stats")["total_reads_processed"]
        outcomes = await asyncio.gather(
            *(getattr(layer, send)("full", {"i": i}) for i in range(5)), return_exceptions=True
        )
        # Five sends issued in one loop iteration reach Redis as one write
        # (the INFO calls around them are reads too).
        assert client.info("stats")["total_reads_processed"] - reads <= 3
        return outcomes

    outcomes = asyncio.run(main())
    assert outcomes[:3] == [None, None, None]
    assert all(isinstance(outcome, ChannelFull) for outcome in outcomes[3:])
    assert [layer.receive(["full"])[1] for _ in range(4)] == [{"i": 0}, {"i": 1}, {"i": 2}, None]


@ASYNC_SENDS
def test_pipelined_sends_survive_a_script_cache_flush_in_order(redis_server, layers, send):
    layer = layers(hosts=[redis_server.url])

    async def main():
        await getattr(layer, send)("warm", {})
        raw(redis_server).script_flush()  # every EVALSHA in the batch gets NOSCRIPT
        await asyncio.gather(*(getattr(layer, send)("ordered", {"i": i}) for i in range(10)))

    asyncio.run(main())
    assert [layer.receive(["ordered"])[1]["i"] for _ in range(10)] == list(range(10))


def test_every_script_is_loaded_again_after_a_script_cache_flush_on_a_threads_connection(
    redis_server, layers
):
    # All scripts run one way (EVALSHA, SCRIPT LOAD on NOSCRIPT), the ordering ones included.
    layer = layers(hosts=[redis_server.url])
    layer.send("warm", {})
    raw(redis_server).script_flush()
    layer.send("c", {"n": 1})
    assert layer.receive(["c", "d"]) == ("c", {"n": 1})  # two queues: the receive script
    raw(redis_server).script_flush()
    assert layer.ordering_claim("seq", 1, "c", {"n": 2}) == "park"
    raw(redis_server).script_flush()
    layer.ordering_advance("seq", 0)
    assert layer.receive(["c"]) == ("c", {"n": 2})


def test_receive_batch_async_takes_what_is_waiting_or_waits_for_one(make_layer):
    layer = make_layer()
    for i in range(5):
        layer.send("proc!a", {"i": i})

    async def main():
        first = await layer.receive_batch_async(["proc!"], 3)
        rest = await layer.receive_batch_async(["proc!"], 10)
        waiting = asyncio.ensure_future(layer.receive_batch_async(["proc!"], 10))
        await asyncio.sleep(0.05)
        await layer.send_async("proc!b", {"late": True})
        return first, rest, await asyncio.wait_for(waiting, 10)

    first, rest, late = asyncio.run(main())
    assert [message["i"] for _, message in first] == [0, 1, 2]
    assert [message["i"] for _, message in rest] == [3, 4]
    assert late == [("proc!b", {"late": True})]


@ASYNC_SENDS
def test_an_unresponsive_redis_fails_async_calls_after_socket_timeout(fresh_redis_server, layers, send):
    layer = layers(hosts=[fresh_redis_server.url], blocking_timeout=0.2, socket_timeout=0.5)

    async def main():
        await getattr(layer, send)("c", {})
        fresh_redis_server.process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(RedisUnavailable, match=r"no reply from Redis within 0\.5 s"):
                await getattr(layer, send)("c", {})
            return time.monotonic() - started
        finally:
            fresh_redis_server.process.send_signal(signal.SIGCONT)

    assert asyncio.run(main()) < 5
    assert layer.receive(["c"]) == ("c", {})


def test_an_unresponsive_redis_fails_sync_calls_after_socket_timeout(fresh_redis_server, layers):
    # The thread's own connection leaves the timeout to the kernel
    # (SO_RCVTIMEO): it must still fire, and a blocking receive must not raise.
    layer = layers(hosts=[fresh_redis_server.url], blocking_timeout=0.2, socket_timeout=0.5)
    layer.send("c", {"n": 1})
    fresh_redis_server.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(RedisUnavailable, match=r"no reply from Redis within 0\.5 s"):
            layer.send("c", {"n": 2})
        assert time.monotonic() - started < 5
        assert layer.receive(["nothing"], block=True) == (None, None)
    finally:
        fresh_redis_server.process.send_signal(signal.SIGCONT)
    assert layer.receive(["c"]) == ("c", {"n": 1})


def test_a_threads_own_connection_closes_when_the_thread_ends(redis_server, make_layer):
    layer = make_layer()
    client = raw(redis_server)
    before = client.info("clients")["connected_clients"]
    thread = threading.Thread(target=layer.send, args=("c", {}))
    thread.start()
    thread.join(10)
    del thread
    gc.collect()
    assert client.info("clients")["connected_clients"] <= before + 1  # the layer's pool may keep one
    assert layer.receive(["c"]) == ("c", {})


def test_a_forked_child_opens_its_own_connections(make_layer):
    # Sharing the parent's socket would interleave two processes' replies.
    layer = make_layer(prefix="fork:")
    layer.send("parent", {"n": 1})
    assert layer.receive(["parent"]) == ("parent", {"n": 1})
    parents_wire = layer._threads.wire(0)
    pid = os.fork()
    if pid == 0:  # the child: send through the layer the parent already used
        status = 1
        try:
            layer.send("child", {"n": 2})
            fresh = layer._threads.wire(0) is not parents_wire
            status = 0 if fresh and layer.receive(["child"]) == ("child", {"n": 2}) else 1
            layer.send("child", {"n": 3})
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's own connection is untouched and still in step.
    layer.send("parent", {"n": 4})
    assert layer.receive(["parent"]) == ("parent", {"n": 4})
    assert layer.receive(["child"]) == ("child", {"n": 3})


def test_redis_py_internals_the_wire_relies_on(redis_server):
    # AsyncWire lets redis-py open the connection, then takes the transport
    # from its StreamWriter (a private attribute): pin that here.
    import redis.asyncio

    async def main():
        client = redis.asyncio.Redis.from_url(redis_server.url)
        pool = client.connection_pool
        connection = pool.connection_class(**pool.connection_kwargs)
        await connection.connect()
        assert isinstance(connection._writer, asyncio.StreamWriter)
        assert callable(connection._writer.transport.set_protocol)
        await connection.disconnect()
        await client.aclose()

    asyncio.run(main())

    # SyncWire writes and reads the sync connection's socket directly.
    pool = redis.Redis.from_url(redis_server.url).connection_pool
    connection = pool.connection_class(**pool.connection_kwargs)
    connection.connect()
    assert isinstance(connection._sock, socket.socket)
    connection.disconnect()
    assert connection._sock is None


def test_send_soon_spreads_a_normal_channel_over_shards_and_pins_a_process_queue(redis_shards, layers):
    layer = layers(hosts=[server.url for server in redis_shards], capacity=2)

    async def main():
        await asyncio.gather(*(layer.send_soon("spread", {"i": i}) for i in range(6)))  # 2 per shard
        with pytest.raises(ChannelFull):
            await layer.send_soon("spread", {"i": 6})
        await asyncio.gather(*(layer.send_soon("proc!x", {"i": i}) for i in range(5)))

    asyncio.run(main())
    assert sorted(layer.receive(["spread"])[1]["i"] for _ in range(6)) == list(range(6))
    assert [layer.receive(["proc!"])[1]["i"] for _ in range(5)] == list(range(5))


def test_a_layer_option_in_a_hosts_entry_url_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"prefix in the hosts entry .* is a layer option"):
        RedisChannelLayer(hosts=["redis://127.0.0.1:6379/0?prefix=x:"])
