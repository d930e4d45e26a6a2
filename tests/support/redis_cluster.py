"""A real Redis Cluster on loopback: masters and replicas, from the redis-server binary.

Built by hand (``CLUSTER ADDSLOTS``, ``MEET``, ``REPLICATE``) rather than with
``redis-cli --cluster create``, which may be missing and waits in whole seconds;
readiness is polled from the nodes themselves (bounded), never slept for.
"""

from __future__ import annotations

import socket
import time

import redis

from tests.support.redis_server import RedisServer, free_port
from tests.support.waiting import wait_until

SLOTS = 16384


def cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher, below 65,536) is free too."""
    for _ in range(1000):
        port = free_port()
        if port <= 55535:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bus:
                    bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            return port
    raise RuntimeError("found no free port pair for a cluster node")


class RedisCluster:
    """``masters`` masters sharing the slots evenly, each with ``replicas`` replicas.

    ``node_timeout`` (ms) is how long a silent master takes to be failed over.
    """

    def __init__(self, masters: int = 3, replicas: int = 1, node_timeout: int = 1000) -> None:
        options = ("--cluster-enabled", "yes", "--cluster-node-timeout", str(node_timeout))
        self.masters = [RedisServer(cluster_port(), extra_args=options) for _ in range(masters)]
        self.replicas = [RedisServer(cluster_port(), extra_args=options) for _ in range(masters * replicas)]
        self.nodes = self.masters + self.replicas

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{node.host}:{node.port}" for node in self.masters)

    def client(self, node: RedisServer) -> redis.Redis:
        return redis.Redis(host=node.host, port=node.port, socket_timeout=5)

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        clients = [self.client(node) for node in self.nodes]
        try:
            first = clients[0]
            for node in self.nodes[1:]:
                first.execute_command("CLUSTER", "MEET", node.host, node.port)
            share = SLOTS // len(self.masters)
            for index, client in enumerate(clients[: len(self.masters)]):
                end = SLOTS if index == len(self.masters) - 1 else (index + 1) * share
                client.execute_command("CLUSTER", "ADDSLOTS", *range(index * share, end))
            ids = [client.execute_command("CLUSTER", "MYID").decode() for client in clients]
            for index, client in enumerate(clients[len(self.masters) :]):
                master = ids[index % len(self.masters)]
                # A replica can follow a master only once gossip has told it about it.
                known = lambda client=client, master=master: self._knows(client, master)  # noqa: E731
                assert wait_until(known, timeout, 0.02), "MEET did not spread"
                client.execute_command("CLUSTER", "REPLICATE", master)
            assert wait_until(lambda: self._ready(clients), timeout, 0.05), "the cluster did not become ready"
        finally:
            for client in clients:
                client.close()

    @staticmethod
    def _knows(client: redis.Redis, node_id: str) -> bool:
        return node_id in client.execute_command("CLUSTER", "NODES").decode()

    def _ready(self, clients: list[redis.Redis]) -> bool:
        for client in clients:
            if b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                return False
        for client in clients[len(self.masters) :]:
            if client.info("replication").get("master_link_status") != "up":
                return False
        # Every node must agree on every master and replica (what a layer reads first).
        return all(len(client.execute_command("CLUSTER", "SLOTS")) == len(self.masters) for client in clients)

    def master_of(self, slot: int) -> RedisServer:
        """The node serving ``slot`` now, asked of any node still alive."""
        for node in self.nodes:
            if node.process is None:
                continue
            client = self.client(node)
            try:
                for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                    if start <= slot <= end:
                        return next(each for each in self.nodes if each.port == int(master[1]))
            except redis.ConnectionError:
                continue
            finally:
                client.close()
        raise RuntimeError("no node answered CLUSTER SLOTS")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> RedisCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_failover(cluster: RedisCluster, slot: int, old: RedisServer, timeout: float = 30.0) -> float:
    """Seconds until a node other than ``old`` serves ``slot`` and the cluster is ok again."""
    started = time.monotonic()

    def promoted() -> bool:
        if cluster.master_of(slot) is old:
            return False
        alive = [node for node in cluster.nodes if node.process is not None]
        client = cluster.client(alive[0])
        try:
            return b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO")
        finally:
            client.close()

    assert wait_until(promoted, timeout, 0.05), "no replica took over"
    return time.monotonic() - started
