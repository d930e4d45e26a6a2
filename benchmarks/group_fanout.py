"""Group fan-out over several ``telex serve`` processes on one Redis (issue 16).

``python -m benchmarks.group_fanout [--members 1000,10000] [--servers 1,2] [--rounds 3]``

For each member count and server count: a redis-server, that many ``telex
serve`` processes and one ``telex worker`` (``benchmarks.telex_app``'s
``/chat``: join on connect, ``Group("chat").send`` per message); a client
process opens the sockets spread evenly over the servers and sends one
message per round; every socket, its sender included, should receive it.
Reported per round: sockets reached, time from the send to the last
arrival, and the Redis commands the round cost (``INFO commandstats``
deltas, which count the commands Lua scripts run), by command. Not in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

import redis

from tests.support.redis_server import RedisServer

from .harness import Processes, child_env, free_port, make_log_dir, raise_nofile, run_json, wait_for_port

ROUTING = "benchmarks.telex_app:routing"


def commandstats(client: redis.Redis) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): row["calls"] for name, row in client.info("commandstats").items()}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    changed = {name: calls - before.get(name, 0) for name, calls in after.items()}
    return {name: calls for name, calls in sorted(changed.items()) if calls and name != "info"}


def run_case(members: int, servers: int, rounds: int, wait: float, log_dir: Any) -> dict[str, Any]:
    with RedisServer() as server, Processes(log_dir) as procs:
        env = child_env()
        ports = [free_port() for _ in range(servers)]
        for index, port in enumerate(ports):
            proc = procs.start(
                f"serve-{members}-{servers}-{index}",
                [sys.executable, "-m", "telex", "serve", "-b", "127.0.0.1", "-p", str(port), server.url],
                env=env,
            )
            wait_for_port(port, proc, 30)
        procs.start(
            f"worker-{members}-{servers}",
            [sys.executable, "-m", "telex", "worker", ROUTING, "--layer", server.url],
            env=env,
        )
        result = run_json(
            procs,
            f"client-{members}-{servers}",
            [
                sys.executable,
                "-m",
                "benchmarks.group_fanout",
                "client",
                "--ports",
                ",".join(map(str, ports)),
                "--members",
                str(members),
                "--rounds",
                str(rounds),
                "--wait",
                str(wait),
                "--redis",
                server.url,
            ],
            timeout=300,
            env=env,
        )
    lasts = [r["last_ms"] for r in result["rounds"] if r["last_ms"] is not None]
    result.update(
        members=members,
        servers=servers,
        median_last_ms=statistics.median(lasts) if lasts else None,
        min_received=min(r["received"] for r in result["rounds"]),
    )
    return result


async def client(ports: list[int], members: int, rounds: int, wait: float, redis_url: str) -> dict[str, Any]:
    from benchmarks.clients.ws_bench import close_all, open_many

    sockets: list[Any] = []
    refused = 0
    for index, port in enumerate(ports):
        share = members // len(ports) + (index < members % len(ports))
        opened, failed = await open_many(f"ws://127.0.0.1:{port}/chat", share, 120)
        sockets += opened
        refused += failed
    stats = redis.Redis.from_url(redis_url)
    results = []
    for round_number in range(rounds):
        arrivals: list[float] = []
        everyone = asyncio.Event()

        async def listen(
            ws: Any, arrivals: list[float] = arrivals, everyone: asyncio.Event = everyone
        ) -> None:
            try:
                await ws.recv()
            except Exception:
                return
            arrivals.append(time.perf_counter())
            if len(arrivals) == len(sockets):
                everyone.set()

        listeners = [asyncio.create_task(listen(ws)) for ws in sockets]
        before = commandstats(stats)
        start = time.perf_counter()
        await sockets[0].send(f"round {round_number}")
        try:
            await asyncio.wait_for(everyone.wait(), wait)
        except TimeoutError:
            pass
        commands = delta(before, commandstats(stats))
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        results.append(
            {
                "received": len(arrivals),
                "last_ms": (max(arrivals) - start) * 1000 if arrivals else None,
                "commands": sum(commands.values()),
                "by_command": commands,
            }
        )
    await close_all(sockets)
    return {"sockets": len(sockets), "refused": refused, "rounds": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "client"])
    parser.add_argument("--members", default="1000,10000", help="comma-separated socket counts")
    parser.add_argument("--servers", default="1,2", help="comma-separated telex serve process counts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wait", type=float, default=30.0, help="seconds a round waits for every socket")
    parser.add_argument("--ports", help="(client) the servers' ports")
    parser.add_argument("--redis", help="(client) the Redis URL, for INFO commandstats")
    parser.add_argument("--json", help="(run) also write the results here")
    args = parser.parse_args()
    raise_nofile()
    if args.mode == "client":
        ports = [int(port) for port in args.ports.split(",")]
        result = asyncio.run(client(ports, int(args.members), args.rounds, args.wait, args.redis))
        print(json.dumps(result))
        return
    log_dir = make_log_dir()
    results = []
    for members in [int(n) for n in args.members.split(",")]:
        for servers in [int(n) for n in args.servers.split(",")]:
            case = run_case(members, servers, args.rounds, args.wait, log_dir)
            results.append(case)
            per_round = "; ".join(
                f"{r['received']:,} in {r['last_ms'] or 0:,.0f} ms, {r['commands']:,} cmds"
                for r in case["rounds"]
            )
            print(f"{members:>6,} members on {servers} servers: {per_round}", flush=True)
            print(f"    commands in round 1: {case['rounds'][0]['by_command']}", flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
