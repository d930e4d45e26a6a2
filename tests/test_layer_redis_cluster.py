"""The Redis layer on a real Redis Cluster (3 masters, 3 replicas; ``tests/support/redis_cluster.py``).

The layer contract on the cluster, the hash-tag layout (no script crosses
slots), the URL and class forms, a slot moved while running (``MOVED`` and
``ASK`` followed on threads and loops), ``telex serve`` and a worker end to
end, and a master killed mid-load.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest
import redis
import redis.crc

from telex.layers import LayerSpecError, get_channel_layer
from telex.layers.redis import RedisChannelLayer, RedisUnavailable
from tests.layer_contract import LayerContract
from tests.support.http import request
from tests.support.processes import TelexProcess, TelexServer, run_telex
from tests.support.redis_cluster import RedisCluster, wait_for_failover
from tests.support.redis_server import RedisServer, free_port, unique_prefix
from tests.support.waiting import wait_until

pytestmark = pytest.mark.redis


@pytest.fixture
def make_layer(redis_cluster, layers):
    def make(**kwargs) -> RedisChannelLayer:
        return layers(hosts=redis_cluster.url, **kwargs)

    return make


# What the contract asks of one queue that a normal channel spread over several shards
# cannot give: FIFO and capacity hold per shard (docs/redis-layer.md, Sharding). The
# one-master cluster below runs them.
_PER_SHARD = (
    "test_channels_are_first_in_first_out",
    "test_channel_full_is_raised_at_capacity",
    "test_exceptions_are_reachable_on_the_layer_object",
    "test_channel_capacity_overrides_by_glob",
    "test_channel_capacity_overrides_by_regex_first_match_wins",
    "test_send_group_skips_full_members_and_never_raises_channel_full",
    "test_members_a_group_send_could_not_reach_are_counted",
    "test_statistics_report_the_spec_keys",
)


class TestRedisClusterLayer(LayerContract):
    """The contract on 3 masters: every key tagged, scripts per master."""

    @pytest.fixture(autouse=True)
    def _per_shard_rules(self, request):
        if request.node.originalname in _PER_SHARD:
            pytest.skip("normal channels spread over 3 shards: FIFO and capacity hold per shard")


@pytest.fixture(scope="module")
def one_master_cluster():
    with RedisCluster(masters=1) as cluster:
        yield cluster


class TestOneMasterClusterLayer(LayerContract):
    """The whole contract on a one-master cluster: one shard, so also the one-round-trip
    group send, whose script derives its queue keys (tagged) itself."""

    @pytest.fixture
    def make_layer(self, one_master_cluster, layers):
        def make(**kwargs) -> RedisChannelLayer:
            return layers(hosts=one_master_cluster.url, **kwargs)

        return make


def node_id(cluster: RedisCluster, node: RedisServer) -> str:
    return cluster.client(node).execute_command("CLUSTER", "MYID").decode()


def shard_named(layer: RedisChannelLayer, channel: str) -> int:
    return layer._ring.shard_of(channel)


# -- layout -------------------------------------------------------------------------


def test_one_shard_per_master_each_with_a_tag_its_master_owns(redis_cluster, make_layer):
    layer = make_layer()
    assert sorted(layer.hosts) == ["cluster:{0}", "cluster:{1}", "cluster:{3}"]
    masters = set()
    for shard in layer.shards:
        tag = shard.key_tag[1:-1]
        assert shard.slot == redis.crc.key_slot(tag.encode())
        masters.add(redis_cluster.master_of(shard.slot).port)
    assert masters == {node.port for node in redis_cluster.masters}


def test_every_key_carries_its_shards_tag_so_no_command_crosses_slots(redis_cluster, make_layer):
    layer = make_layer()
    for index in range(12):
        layer.send(f"normal{index}", {"n": index})
        layer.send(f"srv{index}!x", {"n": index})
        layer.send(layer.new_channel("body?"), {"n": index})
        layer.group_add(f"room{index}", f"srv{index}!x")
        layer.store_set(f"session{index}", {"n": index})
    layer.send_group("room1", {"to": "room"})
    layer.ordering_claim("seq", 3, "normal1", {"n": 3})
    layer.check_data_lost()
    seen = 0
    for master in redis_cluster.masters:
        client = redis_cluster.client(master)
        for key in client.scan_iter(match=f"*{layer.prefix}*", count=1000):
            tag = key[: key.index(b"}") + 1].decode()
            shard = next(each for each in layer.shards if each.key_tag == tag)
            assert key.startswith(tag.encode() + layer.prefix.encode())
            assert redis.crc.key_slot(key) == shard.slot
            assert redis_cluster.master_of(shard.slot) is master
            seen += 1
        client.close()
    assert seen > 40


def test_every_process_picks_the_same_tags_whichever_node_it_asks(redis_cluster, layers):
    replica = redis_cluster.replicas[0]
    first = layers(hosts=redis_cluster.url)
    second = layers(hosts=f"redis+cluster://{replica.host}:{replica.port}", prefix=first.prefix)
    assert sorted(first.hosts) == sorted(second.hosts)
    assert all(first._ring.shard_of(name) == second._ring.shard_of(name) for name in ("a", "b!", "c?d", "e"))
    second.send("srv!one", {"n": 1})
    assert first.receive(["srv!"]) == ("srv!one", {"n": 1})


def test_a_group_send_is_one_script_per_shard_holding_members(redis_cluster, make_layer):
    layer = make_layer()
    servers = [f"srv{index}!" for index in range(12)]
    assert len({shard_named(layer, name) for name in servers}) == 3
    for name in servers:
        for socket in range(5):
            layer.group_add("everyone", f"{name}{socket}")
    layer.send_group("everyone", {"text": "warm-up"})  # each master loads the scripts once
    assert len(layer.receive_batch_nowait(servers, 100)) == 60
    clients = [redis_cluster.client(node) for node in redis_cluster.masters]
    for client in clients:
        client.config_resetstat()
    layer.send_group("everyone", {"text": "hi"})
    calls = 0
    for client in clients:
        stats = client.info("commandstats")
        calls += sum(value["calls"] for name, value in stats.items() if name.startswith("cmdstat_eval"))
        client.close()
    assert calls == 1 + 3  # read the members, then one script per shard
    assert sorted(layer.receive_batch_nowait(["srv4!"], 10)) == [
        (f"srv4!{socket}", {"text": "hi"}) for socket in range(5)
    ]


# -- URL and class forms -----------------------------------------------------------


def test_the_class_takes_a_cluster_entry_and_the_url_takes_options(redis_cluster, layers):
    nodes = [(node.host, node.port) for node in redis_cluster.masters[:1]]
    layer = layers(hosts=[{"cluster": nodes}])
    assert len(layer.shards) == 3
    from_url = get_channel_layer(redis_cluster.url + "/?capacity=2&prefix=" + unique_prefix())
    assert from_url.capacity == 2 and len(from_url.shards) == 3
    from_url.send("body?a", {})
    from_url.send("body?a", {})
    with pytest.raises(from_url.ChannelFull):
        from_url.send("body?a", {})
    from_url.flush()
    from_url.close()


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("redis+cluster://127.0.0.1:7000/1", "database 0 only"),
        ("redis+cluster://127.0.0.1", "host:port"),
        ("redis+cluster://127.0.0.1:7000/?bogus=1", "unknown option 'bogus'"),
    ],
)
def test_bad_cluster_urls_fail_with_one_line(url, error):
    with pytest.raises(LayerSpecError, match=error):
        get_channel_layer(url)


def test_a_cluster_must_be_the_only_hosts_entry(redis_cluster):
    with pytest.raises(ValueError, match="only hosts entry"):
        RedisChannelLayer([redis_cluster.url, "redis://127.0.0.1:6379/0"])


def test_a_plain_redis_is_refused_as_a_cluster_node(redis_server):
    with pytest.raises(LayerSpecError, match="is not a Redis Cluster node"):
        get_channel_layer(f"redis+cluster://{redis_server.host}:{redis_server.port}")


def test_an_unreachable_cluster_fails_at_creation_naming_the_nodes():
    port = free_port()
    with pytest.raises(RedisUnavailable, match=f"no node answered CLUSTER SLOTS .*127.0.0.1:{port}"):
        RedisChannelLayer(f"redis+cluster://127.0.0.1:{port}")


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_exit_with_status_1_when_no_cluster_node_answers(command):
    url = f"redis+cluster://127.0.0.1:{free_port()}"
    arguments = {
        "serve": ["serve", url, "-p", str(free_port())],
        "worker": ["worker", "examples.hello_http.routing:channel_routing", "--layer", url],
    }
    result = run_telex(arguments[command])
    assert result.returncode == 1
    assert "channel layer unreachable: RedisUnavailable: Redis Cluster" in result.stderr
    assert "Traceback" not in result.stderr


# -- a slot moving while running ------------------------------------------------------


def move_slot(cluster: RedisCluster, slot: int, target: RedisServer, finish: bool = True) -> RedisServer:
    """Migrate ``slot`` (and its keys) to ``target``; with ``finish=False`` leave it mid-migration."""
    source = cluster.master_of(slot)
    src, dst = cluster.client(source), cluster.client(target)
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(cluster, source))
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(cluster, target))
    if finish:
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *keys)
        for node in cluster.masters:
            cluster.client(node).execute_command("CLUSTER", "SETSLOT", slot, "NODE", node_id(cluster, target))
        assert wait_until(lambda: cluster.master_of(slot) is target, 10)
    src.close()
    dst.close()
    return source


def cancel_migration(cluster: RedisCluster, slot: int) -> None:
    for node in cluster.masters:
        cluster.client(node).execute_command("CLUSTER", "SETSLOT", slot, "STABLE")


def test_a_moved_slot_is_followed_on_threads_and_on_a_loop(redis_cluster, make_layer):
    layer = make_layer()
    shard = layer.shards[0]
    name = next(f"srv{index}!" for index in itertools.count() if shard_named(layer, f"srv{index}!") == 0)
    layer.send(name + "a", {"n": 1})
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(layer.receive_async([name])) == (name + "a", {"n": 1})
    layer.send(name + "a", {"n": 2})  # moves with its slot
    target = next(node for node in redis_cluster.masters if node is not redis_cluster.master_of(shard.slot))
    source = move_slot(redis_cluster, shard.slot, target)
    try:
        # Both the thread's and the loop's connections still point at the old master.
        assert layer.receive([name]) == (name + "a", {"n": 2})
        loop.run_until_complete(layer.send_async(name + "b", {"n": 3}))
        assert loop.run_until_complete(layer.receive_async([name])) == (name + "b", {"n": 3})
        assert shard.address() == (target.host, target.port)
    finally:
        move_slot(redis_cluster, shard.slot, source)
        loop.close()
    layer.send(name + "c", {"n": 4})
    assert layer.receive([name]) == (name + "c", {"n": 4})


def test_ask_during_a_migration_sends_the_command_to_the_importing_node(redis_cluster, make_layer):
    layer = make_layer()
    shard = layer.shards[1]
    name = next(f"body{index}?x" for index in itertools.count() if shard_named(layer, f"body{index}?x") == 1)
    target = next(node for node in redis_cluster.masters if node is not redis_cluster.master_of(shard.slot))
    move_slot(redis_cluster, shard.slot, target, finish=False)
    try:
        # The queue key does not exist on the migrating node, so it answers ASK.
        layer.send(name, {"n": 1})
        target_client = redis_cluster.client(target)
        key = layer._queue_key(name, 1)
        assert target_client.pipeline(transaction=False).execute_command("ASKING").llen(key).execute()[1] == 1
        target_client.close()
        loop = asyncio.new_event_loop()
        assert loop.run_until_complete(layer.receive_async([name])) == (name, {"n": 1})
        loop.run_until_complete(layer.send_async(name, {"n": 2}))
        loop.close()
        assert layer.receive([name]) == (name, {"n": 2})
    finally:
        cancel_migration(redis_cluster, shard.slot)


# -- end to end ------------------------------------------------------------------------


def test_serve_and_a_worker_answer_through_the_cluster(redis_cluster):
    url = redis_cluster.url + "?prefix=" + unique_prefix()
    worker = TelexProcess(
        ["worker", "examples.hello_http.routing:channel_routing", "--layer", url], ready="listening on"
    )
    with TelexServer(url) as server, worker:
        server.wait_for("asyncio bridge")
        bodies = {request(server, "GET", f"/c/{index}")[2] for index in range(20)}
    assert bodies == {f"Hello world! You asked for /c/{index}".encode() for index in range(20)}


# -- a master killed mid-load ------------------------------------------------------------


class Load:
    """Sends to a normal channel and to a ``!`` channel, paced by what arrives (at most ~100
    ahead), and what arrived; run on a thread (``layer.send``/``receive``) or on an event loop
    (``send_async``/``receive_async``)."""

    def __init__(self, layer: RedisChannelLayer, spread: str, pinned: str, stop: threading.Event) -> None:
        self.layer, self.spread, self.pinned, self.stop = layer, spread, pinned, stop
        self.acked: list[tuple[str, int]] = []
        self.received: set[tuple[str, int]] = set()
        self.refused: list[float] = []  # when each refused send failed
        self.mark = 0  # sends acknowledged before this index may be lost
        self._room = threading.Semaphore(100)

    def channel(self, number: int) -> str:
        return self.spread if number % 2 else self.pinned + "x"

    def got(self, channel: str | None, message: dict | None, draining_until: float | None) -> bool:
        """Count one receive; whether the drain after ``stop`` is over."""
        if channel is not None and message is not None:
            self.received.add((channel, message["n"]))
            self._room.release()
            return False
        return draining_until is not None and (time.monotonic() > draining_until or not self.missing())

    def missing(self) -> list[tuple[str, int]]:
        return [each for each in self.acked[self.mark :] if each not in self.received]

    def lost(self) -> list[tuple[str, int]]:
        return [each for each in self.acked[: self.mark] if each not in self.received]

    def _drain_deadline(self, deadline: float | None) -> float | None:
        if deadline is None and self.stop.is_set():
            return time.monotonic() + 20  # drain what is left, bounded
        return deadline

    def on_threads(self) -> list[threading.Thread]:
        def send() -> None:
            for number in itertools.count():
                if self.stop.is_set():
                    return
                self._room.acquire(timeout=0.5)  # a lost message never gives its room back
                try:
                    self.layer.send(self.channel(number), {"n": number})
                    self.acked.append((self.channel(number), number))
                except RedisUnavailable:
                    self.refused.append(time.monotonic())

        def receive() -> None:
            deadline = None
            while not self.got(*self.layer.receive([self.spread, self.pinned], block=True), deadline):
                deadline = self._drain_deadline(deadline)

        return [threading.Thread(target=send), threading.Thread(target=receive)]

    def on_a_loop(self) -> threading.Thread:
        async def send() -> None:
            for number in itertools.count():
                if self.stop.is_set():
                    return
                await asyncio.to_thread(self._room.acquire, timeout=0.5)
                try:
                    await self.layer.send_async(self.channel(number), {"n": number})
                    self.acked.append((self.channel(number), number))
                except RedisUnavailable:
                    self.refused.append(time.monotonic())

        async def receive() -> None:
            deadline = None
            while not self.got(*await self.layer.receive_async([self.spread, self.pinned]), deadline):
                deadline = self._drain_deadline(deadline)

        async def both() -> None:
            await asyncio.gather(send(), receive())

        return threading.Thread(target=asyncio.run, args=(both(),))


def pinned_to(layer: RedisChannelLayer, shard: int, start: int = 0) -> str:
    return next(f"srv{n}!" for n in itertools.count(start) if shard_named(layer, f"srv{n}!") == shard)


def test_a_killed_master_is_replaced_and_the_layer_recovers_without_a_restart(layers):
    """A master is ``kill -9``ed under load from threads, from an event loop, and from
    ``telex serve`` + a worker; its replica takes over and all three recover by themselves.

    Counts, not timing, are asserted: every send the layer acknowledged after
    the failover arrives. What was acknowledged before it and lost, and how
    long the failover took, are printed (``docs/redis-layer.md``, Redis Cluster).
    """
    with RedisCluster() as cluster:
        layer = layers(hosts=cluster.url, capacity=1_000_000, blocking_timeout=1.0)
        victim_shard = layer.shards[0]
        victim = cluster.master_of(victim_shard.slot)
        stop = threading.Event()
        loads = [
            Load(layer, "spread", pinned_to(layer, 0), stop),
            Load(layer, "spread.loop", pinned_to(layer, 0, 1000), stop),
        ]
        threads = [*loads[0].on_threads(), loads[1].on_a_loop()]
        url = cluster.url + "?blocking_timeout=1&prefix=" + unique_prefix()
        worker = TelexProcess(
            ["worker", "examples.hello_http.routing:channel_routing", "--layer", url], ready="listening on"
        )
        with TelexServer(url) as server, worker:
            assert request(server, "GET", "/before")[0] == 200
            for thread in threads:
                thread.start()
            assert wait_until(lambda: all(len(load.received) > 100 for load in loads), 20)
            before_kill = [len(load.acked) for load in loads]
            victim.kill()
            took = wait_for_failover(cluster, victim_shard.slot, victim)
            for load in loads:
                load.mark = len(load.acked)
            # The pinned queues, on the failed-over shard, work again without a restart.
            assert wait_until(lambda: all(len(load.acked) > load.mark + 100 for load in loads), 30)
            assert wait_until(lambda: request(server, "GET", "/after")[0] == 200, 30)
            stop.set()
            for thread in threads:
                thread.join(30)
        for load in loads:
            assert not load.missing()
        print(f"\nfailover took {took:.2f} s after the kill")
        for load, before in zip(loads, before_kill, strict=True):
            refusing = load.refused[-1] - load.refused[0] if load.refused else 0
            print(
                f"{load.spread}: acked {len(load.acked)} sends ({before} before the kill), refused "
                f"{len(load.refused)} over {refusing:.2f} s, lost {len(load.lost())} acked before failover"
            )


# -- without a cluster ----------------------------------------------------------------------


def test_a_cluster_url_becomes_a_cluster_entry_with_its_credentials_and_options():
    from telex.layers.redis._urls import layer_arguments

    arguments = layer_arguments("redis+cluster://app:s%40cret@h1:7000,[::1]:7001/?capacity=3&prefix=p:")
    assert arguments["hosts"] == [
        {"cluster": [("h1", 7000), ("::1", 7001)], "username": "app", "password": "s@cret"}
    ]
    assert arguments["capacity"] == 3 and arguments["prefix"] == "p:"


def test_tags_depend_on_the_slot_map_only_and_cover_a_master_with_one_slot():
    from telex.layers.redis._cluster import pick_tags

    a, b, c = ("10.0.0.1", 7000), ("10.0.0.2", 7000), ("10.0.0.3", 7000)
    ranges = [(0, 5460, a), (5461, 10922, b), (10923, 16383, c)]
    assert pick_tags(ranges) == pick_tags(list(reversed(ranges))) == [("3", 1584), ("1", 9842), ("0", 13907)]
    lonely = [(0, 99, a), (100, 100, b), (101, 16383, c)]
    tags = dict((slot, tag) for tag, slot in pick_tags(lonely))
    assert redis.crc.key_slot(tags[100].encode()) == 100
