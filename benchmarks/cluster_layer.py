"""Redis layer send+receive on one node, three independent servers and a three-master cluster.

``python -m benchmarks.cluster_layer [--count 20000] [--rounds 3] [--clients 1,2] [--json PATH]``

For each Redis set-up and client count: that many ``benchmarks/clients/layer_bench.py``
processes (Telex's layer, the ``worker`` case: send then ``receive(block=True)`` on one
normal channel, one after the other; and the ``stream`` case: a sender thread and a
blocked receiver thread at once) start together on each ``go``; a round's figure is
every client's messages over the wall time until the last one finished, the row's
the median round. The cluster has no replicas, so the rows compare sharding over
slots with sharding over servers, not replication. Not pinned to CPUs, not in CI:
on a 2-core machine three Redis servers cannot run in parallel, so read the rows
as the cost of the cluster's layout, not its scaling.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer

from .harness import Processes, child_env, make_log_dir, wait_for_line
from .scenarios.layer import json_line, send_line

CLIENT = Path(__file__).resolve().parent / "clients" / "layer_bench.py"
CASES = ("worker", "stream")


@contextlib.contextmanager
def redis_setup(name: str) -> Iterator[tuple[str, int]]:
    """The layer URL of a set-up, and one port (the client's floor needs one; unused here)."""
    if name == "1 node":
        with RedisServer() as server:
            yield server.url, server.port
    elif name == "3 servers":
        servers = [RedisServer() for _ in range(3)]
        try:
            for server in servers:
                server.start()
            hosts = ",".join(f"{server.host}:{server.port}" for server in servers)
            yield f"redis://{hosts}/0", servers[0].port
        finally:
            for server in servers:
                server.stop()
    else:
        with RedisCluster(masters=3, replicas=0) as cluster:
            yield cluster.url, cluster.masters[0].port


def run_case(
    setup: str, url: str, port: int, *, case: str, clients: int, count: int, rounds: int, log_dir: Any
) -> dict[str, Any]:
    """Start ``clients`` layer_bench processes, run ``rounds`` rounds of them at once."""
    command = [sys.executable, str(CLIENT), "--impl", "telex", "--url", url, "--port", str(port)]
    command += ["--case", case, "--count", str(count)]
    with Processes(log_dir) as procs:
        started = []
        for index in range(clients):
            proc = procs.start(
                f"{setup.replace(' ', '')}-{case}-{clients}-{index}",
                command,
                env=child_env(),
                stdin=True,
            )
            started.append(proc)
        for proc in started:
            wait_for_line(proc, "READY", 60)
        rates = []
        for round_index in range(rounds):
            start = time.perf_counter()
            for proc in started:
                send_line(proc, b"go\n")
            for proc in started:
                json_line(proc, 2 * round_index, 300)
            rates.append(clients * count / (time.perf_counter() - start))
            for proc in started:
                send_line(proc, b"check\n")
            for proc in started:
                json_line(proc, 2 * round_index + 1, 60)
        for proc in started:
            assert proc.popen.stdin is not None
            proc.popen.stdin.close()
            proc.wait(60)
    return {
        "setup": setup,
        "case": case,
        "clients": clients,
        "msgs_per_s": statistics.median(rates),
        "rounds": rates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000, help="messages per client per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default="1,2", help="comma-separated client process counts")
    parser.add_argument("--setups", default="1 node,3 servers,3-master cluster")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    log_dir = make_log_dir()
    results = []
    for setup in args.setups.split(","):
        with redis_setup(setup) as (url, port):
            for case in CASES:
                for clients in [int(n) for n in args.clients.split(",")]:
                    result = run_case(
                        setup,
                        url,
                        port,
                        case=case,
                        clients=clients,
                        count=args.count,
                        rounds=args.rounds,
                        log_dir=log_dir,
                    )
                    results.append(result)
                    rounds = "/".join(f"{rate:,.0f}" for rate in result["rounds"])
                    print(
                        f"{setup:<18} {case:<7} {clients} client(s): {result['msgs_per_s']:>9,.0f} msg/s "
                        f"(rounds {rounds})",
                        flush=True,
                    )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
