"""Group fan-out over several server processes on one Redis, Telex against Channels 4.

``python -m benchmarks.group_fanout [--members 10000] [--servers 2,4] [--systems ...] [--rounds 3]``
``python -m benchmarks.group_fanout --members 100000 --servers 8`` for the 100,000 case.

For each system, member count and server count: a redis-server of its own,
that many server processes and, for Telex, one ``telex worker``
(``benchmarks.telex_app``'s ``/chat``: join on connect, ``Group("chat").send``
per message). The peer, Channels 4 + channels_redis behind uvicorn
(``benchmarks.peers.channels4``, the same behaviour), runs once on
``RedisChannelLayer`` and once on ``RedisPubSubChannelLayer``; it has no
worker process. Client processes (``benchmarks.clients.fanout_members``,
at most ``--per-client`` sockets each, each on a loopback address of its
own) open the sockets evenly over the servers; per round one socket sends one
message, and every socket, its sender included, should receive it. Reported
per round: sockets reached, time from the send to the last arrival, and the
Redis commands the round cost (``INFO commandstats`` deltas, which count the
commands Lua scripts run); per case: RSS of every process. Not in CI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from tests.support.redis_server import RedisServer

from .envs import channels4_python, ensure_channels4_env, telex_versions
from .harness import (
    REPO_ROOT,
    BenchError,
    Proc,
    Processes,
    child_env,
    free_port,
    machine_info,
    make_log_dir,
    raise_nofile,
    rss_kb,
    wait_for_port,
)

ROUTING = "benchmarks.telex_app:routing"
SYSTEMS = {
    "telex": "telex serve + telex worker, Telex Redis layer",
    "channels-core": "uvicorn + Channels 4, channels_redis RedisChannelLayer",
    "channels-pubsub": "uvicorn + Channels 4, channels_redis RedisPubSubChannelLayer",
}
PEERS_DIR = REPO_ROOT / "benchmarks" / "peers"


def commandstats(client: redis.Redis) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): row["calls"] for name, row in client.info("commandstats").items()}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    changed = {name: calls - before.get(name, 0) for name, calls in after.items()}
    return {name: calls for name, calls in sorted(changed.items()) if calls and name != "info"}


def source_addresses() -> Iterator[str]:
    """Fresh loopback addresses, one per client process for the whole run (never 127.0.0.1)."""
    for number in range(256 * 254):
        yield f"127.0.{2 + number // 254}.{1 + number % 254}"


def last_line(proc: Proc, tag: str, round_number: int | None, deadline: float) -> str:
    """The rest of the client's line ``TAG [R] ...``; waits until ``deadline`` (monotonic)."""
    prefix = f"{tag} " if round_number is None else f"{tag} {round_number} "
    delay = 0.005
    while True:
        for line in reversed(proc.output().splitlines()):
            if line.startswith(prefix) or line == prefix.strip():
                return line[len(prefix) :]
        if not proc.alive():
            raise BenchError(f"{proc.name} exited with status {proc.popen.returncode}: {proc.tail()}")
        if time.monotonic() > deadline:
            raise BenchError(f"{proc.name} printed no {prefix.strip()!r} in time: {proc.tail()}")
        time.sleep(delay)  # the client's log is the only thing to wait on
        delay = min(delay * 2, 0.05)


def tell(proc: Proc, line: str) -> None:
    assert proc.popen.stdin is not None
    proc.popen.stdin.write(line.encode() + b"\n")
    proc.popen.stdin.flush()


def start_servers(
    system: str, procs: Processes, redis_url: str, servers: int, *, name: str, args: argparse.Namespace
) -> list[tuple[int, Proc]]:
    started = []
    telex_url = f"{redis_url}?{args.telex_layer_options}" if args.telex_layer_options else redis_url
    for index in range(servers):
        port = free_port()
        if system == "telex":
            command = [sys.executable, "-m", "telex", "serve", "-b", "127.0.0.1", "-p", str(port), telex_url]
            env, cwd = child_env(), None
        else:
            command = [
                str(channels4_python(args.cache_dir)),
                "-m",
                "uvicorn",
                "channels4.fanout_asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ]
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            env.update(
                PYTHONPATH=str(PEERS_DIR),
                PYTHONUNBUFFERED="1",
                BENCH_CHANNELS_LAYER=system.removeprefix("channels-"),
                BENCH_REDIS_URL=redis_url,
            )
            cwd = str(PEERS_DIR)
        proc = procs.start(f"{name}-serve-{index}", command, env=env, cwd=cwd)
        started.append((port, proc))
    for port, proc in started:
        wait_for_port(port, proc, 60)
    if system == "telex":
        # Threads as docs/deployment.md runs a worker: with one, each connect's
        # three round trips (take, group_add, accept) wait one after another.
        worker_args = [sys.executable, "-m", "telex", "worker", ROUTING, "--layer", telex_url]
        worker_args += ["--threads", str(args.telex_worker_threads)]
        worker = procs.start(f"{name}-worker", worker_args, env=child_env())
        started.append((0, worker))
    return started


def memory(pids: dict[str, int]) -> dict[str, int]:
    """RSS in KiB by process name (0 for one that is gone)."""
    found = {}
    for name, pid in pids.items():
        try:
            found[name] = rss_kb(pid)[0]
        except (FileNotFoundError, ProcessLookupError):
            found[name] = 0
    return found


def run_case(
    system: str,
    members: int,
    servers: int,
    args: argparse.Namespace,
    *,
    sources: Iterator[str],
    log_dir: Path,
) -> dict[str, Any]:
    name = f"{system}-{members}-{servers}"
    clients = math.ceil(members / args.per_client)
    with RedisServer() as server, Processes(log_dir) as procs:
        stats = redis.Redis.from_url(server.url)
        stats.config_set("maxclients", 10000)
        started = start_servers(system, procs, server.url, servers, name=name, args=args)
        ports = [port for port, _ in started if port]
        opening = time.monotonic()
        client_procs = []
        first = 0
        for index in range(clients):
            count = members // clients + (index < members % clients)
            client_procs.append(
                procs.start(
                    f"{name}-client-{index}",
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.clients.fanout_members",
                        "--source",
                        next(sources),
                        "--ports",
                        ",".join(map(str, ports)),
                        "--first",
                        str(first),
                        "--count",
                        str(count),
                        "--open-timeout",
                        str(args.open_timeout),
                        "--wait",
                        str(args.wait),
                    ],
                    env=child_env(),
                    stdin=True,
                )
            )
            first += count
        deadline = opening + args.open_timeout + 60
        ready = [json.loads(last_line(proc, "ready", None, deadline)) for proc in client_procs]
        open_s = time.monotonic() - opening
        opened = sum(r["opened"] for r in ready)
        errors: dict[str, int] = {}
        for r in ready:
            for error, count in r["errors"].items():
                errors[error] = errors.get(error, 0) + count
        print(f"    {name}: {opened:,} of {members:,} open in {open_s:.0f} s {errors or ''}", flush=True)
        if not opened:
            raise BenchError(f"{name}: no socket opened: {errors}")
        pids = {proc.name.removeprefix(name + "-"): proc.pid for _, proc in started}
        assert server.process is not None
        pids["redis-server"] = server.process.pid
        memory_open = memory(pids)
        rounds = []
        for round_number in range(args.rounds):
            for proc in client_procs:
                tell(proc, f"arm {round_number}")
            deadline = time.monotonic() + 30
            for proc in client_procs:
                last_line(proc, "armed", round_number, deadline)
            before = commandstats(stats)
            tell(client_procs[0], f"send {round_number}")
            sent = float(last_line(client_procs[0], "sent", round_number, time.monotonic() + 30))
            deadline = time.monotonic() + args.wait + 30
            results = [json.loads(last_line(proc, "result", round_number, deadline)) for proc in client_procs]
            commands = delta(before, commandstats(stats))
            lasts = [r["last"] for r in results if r["last"] is not None]
            rounds.append(
                {
                    "received": sum(r["received"] for r in results),
                    "members": sum(r["members"] for r in results),
                    "last_ms": (max(lasts) - sent) * 1000 if lasts else None,
                    "commands": sum(commands.values()),
                    "by_command": commands,
                    "closed": sum(r["closed"] + r["lost"] for r in results),
                }
            )
        memory_end = memory(pids)
        clients_kb = memory({proc.name: proc.pid for proc in client_procs})
        for proc in client_procs:
            tell(proc, "quit 0")
    lasts = [r["last_ms"] for r in rounds if r["last_ms"] is not None]
    return {
        "system": system,
        "members": members,
        "servers": servers,
        "clients": clients,
        "opened": opened,
        "open_errors": errors,
        "open_s": round(open_s, 1),
        "rounds": rounds,
        "median_last_ms": statistics.median(lasts) if lasts else None,
        "min_received": min(r["received"] for r in rounds),
        "rss_kb_open": memory_open,
        "rss_kb": memory_end,
        "rss_kb_total": sum(memory_end.values()),
        "client_rss_kb_total": sum(clients_kb.values()),
    }


def print_case(case: dict[str, Any]) -> None:
    per_round = "; ".join(
        f"{r['received']:,} in {r['last_ms'] or 0:,.0f} ms, {r['commands']:,} cmds"
        + (f", {r['closed']:,} closed by then" if r["closed"] else "")
        for r in case["rounds"]
    )
    servers = [kb for name, kb in case["rss_kb"].items() if name.startswith("serve-")]
    print(
        f"{case['system']:>15} {case['members']:>7,} members on {case['servers']} servers: {per_round}\n"
        f"    round 1 commands: {case['rounds'][0]['by_command']}\n"
        f"    RSS: servers {min(servers) / 1024:,.0f}-{max(servers) / 1024:,.0f} MiB each, "
        f"total {case['rss_kb_total'] / 1024:,.0f} MiB ({case['rss_kb']}); "
        f"clients {case['client_rss_kb_total'] / 1024:,.0f} MiB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated: {', '.join(SYSTEMS)}")
    parser.add_argument("--members", default="10000", help="comma-separated socket counts")
    parser.add_argument("--servers", default="2,4", help="comma-separated server process counts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wait", type=float, default=60.0, help="seconds a round waits for every socket")
    parser.add_argument("--per-server", type=int, default=15000, help="most sockets per server process")
    parser.add_argument("--per-client", type=int, default=15000, help="most sockets per client process")
    parser.add_argument("--open-timeout", type=float, default=600.0, help="seconds to open all sockets")
    parser.add_argument(
        "--telex-layer-options", default="", help="query for Telex's Redis URL: group_entry_members=20000"
    )
    parser.add_argument(
        "--telex-worker-threads", type=int, default=4, help="consumer threads of Telex's worker (--threads)"
    )
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "telex-bench")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    systems = args.systems.split(",")
    if unknown := set(systems) - set(SYSTEMS):
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    raise_nofile()
    versions: dict[str, Any] = {"telex": telex_versions()}
    if any(system.startswith("channels") for system in systems):
        versions["channels4"] = ensure_channels4_env(args.cache_dir)
    log_dir = make_log_dir()
    sources = source_addresses()
    results = []
    for members in [int(n) for n in args.members.split(",")]:
        for servers in [int(n) for n in args.servers.split(",")]:
            if members > servers * args.per_server:
                print(f"skipped {members:,} on {servers} servers: over {args.per_server:,} per server")
                continue
            for system in systems:
                try:
                    case = run_case(system, members, servers, args, sources=sources, log_dir=log_dir)
                except BenchError as exc:
                    print(f"{system} {members:,} on {servers}: failed: {exc}", flush=True)
                    failed = {"system": system, "members": members, "servers": servers, "error": str(exc)}
                    results.append(failed)
                    continue
                results.append(case)
                print_case(case)
    if args.json:
        document = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "versions": versions,
            "systems": {system: SYSTEMS[system] for system in systems},
            "telex_layer_options": args.telex_layer_options,
            "telex_worker_threads": args.telex_worker_threads,
            "logs": str(log_dir),
            "cases": results,
        }
        Path(args.json).write_text(json.dumps(document, indent=1))


if __name__ == "__main__":
    main()
