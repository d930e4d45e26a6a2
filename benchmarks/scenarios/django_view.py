"""django-view: one Django view behind Django's default middleware, on four stacks (issue 13).

The view (``benchmarks/django_project``) reads a key of a database-backed
session on sqlite and the request's user: one SELECT per request, no write.
Every stack serves the same project from a fresh sqlite file of its own,
with a session stored by its own Django; wrk sends that session's cookie.
Besides wrk's figures, each row counts the CPU time of every process of the
stack (servers, workers, their children and the redis-server), read from
``/proc/<pid>/stat`` before and after the run, and gives requests per
CPU-second.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.redis_server import RedisServer

from .. import envs
from ..harness import REPO_ROOT, BenchError, Processes, Skip, free_port, wait_for_port
from ..results_model import DAPHNE, GUNICORN, TELEX_REDIS, UVICORN, Context, Row
from ..systems import START_TIMEOUT, http_get_ok
from .http_hello import POLL_NOTE, wrk

NAME = "django-view"
PROJECT_DIR = REPO_ROOT / "benchmarks" / "django_project"
SYSTEMS = (TELEX_REDIS, DAPHNE, GUNICORN, UVICORN)
SLUGS = {TELEX_REDIS: "telex", DAPHNE: "daphne", GUNICORN: "gunicorn", UVICORN: "uvicorn"}
VISITS = b"visits=42"  # what benchsession stores; the view must echo it
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Stack:
    system: str
    port: int
    members: dict[str, int]  # a name for each process tree measured -> its root pid
    session_key: str
    note: str = ""


def _ticks(pid: int) -> int:
    """utime + stime of one process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as stat:
        # Fields after the command name, which may itself hold spaces and parentheses.
        fields = stat.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def _tree(pid: int) -> list[int]:
    """A process and its descendants, whichever of its threads forked them."""
    found = [pid]
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found.extend(_tree(child))
    return found


def cpu_snapshot(members: dict[str, int]) -> dict[tuple[str, int], int]:
    ticks = {}
    for name, root in members.items():
        for pid in _tree(root):
            try:
                ticks[name, pid] = _ticks(pid)
            except (OSError, IndexError):
                pass  # exited meanwhile
    return ticks


def cpu_seconds(before: dict[tuple[str, int], int], after: dict[tuple[str, int], int]) -> dict[str, float]:
    """CPU seconds per member between two snapshots; a process started in between counts whole."""
    spent: dict[str, float] = {}
    for (name, pid), ticks in after.items():
        spent[name] = spent.get(name, 0.0) + (ticks - before.get((name, pid), 0)) / CLOCK_TICKS
    return spent


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot (``/proc/stat``), to tell what else ran meanwhile."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def children_cpu_seconds() -> float:
    """CPU seconds of this harness's reaped children (wrk among them)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _get_with_cookie(port: int, session_key: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
            b"Cookie: sessionid=" + session_key.encode() + b"\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _interpreter(system: str, ctx: Context) -> tuple[str, str, list[str]]:
    """(python, BENCH_DJANGO_STACK, extra PYTHONPATH entries) for a system, or Skip."""
    peers = ctx.info["peers"]
    if system == TELEX_REDIS:
        try:
            envs.harness_django()
        except BenchError as exc:
            raise Skip(str(exc)) from None
        return sys.executable, "telex", [str(REPO_ROOT)]
    if system == DAPHNE:
        if "error" in peers.get("daphne_stack", {"error": ""}):
            raise Skip("Daphne stack virtualenv unavailable")
        return str(envs.daphne_python(ctx)), "channels", []
    if "error" in peers.get("django_servers", {"error": ""}):
        raise Skip("gunicorn/uvicorn virtualenv unavailable")
    return str(envs.django_python(ctx)), "plain", []


def _manage(procs: Processes, name: str, python: str, args: list[str], env: dict[str, str]) -> str:
    """Run a manage.py command to completion; its output."""
    proc = procs.start(name, [python, str(PROJECT_DIR / "manage.py"), *args], env=env, cwd=str(PROJECT_DIR))
    status = proc.wait(120)
    if status != 0:
        raise BenchError(f"manage.py {args[0]} exited with status {status}: {proc.tail()}")
    return proc.output()


@contextmanager
def running(system: str, ctx: Context, procs: Processes) -> Iterator[Stack]:
    """Migrate a fresh database, store a session, start the stack; stop it all when the block ends."""
    python, stack, extra_path = _interpreter(system, ctx)
    slug = SLUGS[system]
    work = Path(tempfile.mkdtemp(prefix=f"django-view-{slug}-", dir=ctx.log_dir))
    redis = None
    try:
        env = dict(os.environ)
        env.update(
            PYTHONPATH=os.pathsep.join([*extra_path, str(PROJECT_DIR)]),
            PYTHONUNBUFFERED="1",
            DJANGO_SETTINGS_MODULE="benchproject.settings",
            BENCH_DJANGO_STACK=stack,
            BENCH_DJANGO_DB=str(work / "db.sqlite3"),
        )
        if system in (TELEX_REDIS, DAPHNE):
            redis = RedisServer()
            redis.start()
            env["BENCH_REDIS_URL"] = redis.url
        _manage(procs, f"{slug}-migrate", python, ["migrate", "--noinput", "-v0"], env)
        session_key = _manage(procs, f"{slug}-session", python, ["benchsession"], env).split()[-1]

        port = free_port()
        bindir = Path(python).parent
        manage = [python, str(PROJECT_DIR / "manage.py")]
        cwd = str(PROJECT_DIR)
        note = ""
        if system == TELEX_REDIS:
            assert redis is not None
            server = procs.start(
                "telex-serve",
                [python, "-m", "telex", "serve", "-b", "127.0.0.1", "-p", str(port), redis.url],
                env=env,
                cwd=cwd,
            )
            worker = procs.start("telex-runworker", [*manage, "runworker"], env=env, cwd=cwd)
            members = {"telex serve": server.pid, "runworker": worker.pid}
        elif system == DAPHNE:
            server = procs.start(
                "daphne",
                [
                    str(bindir / "daphne"),
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "benchproject.asgi:channel_layer",
                ],
                env=env,
                cwd=cwd,
            )
            worker = procs.start("daphne-runworker", [*manage, "runworker"], env=env, cwd=cwd)
            members = {"daphne": server.pid, "runworker": worker.pid}
            peer = ctx.info["peers"]["daphne_stack"]
            note = f"reader: {peer.get('daphne_reader')}, msgpack: {peer.get('msgpack_mode')}"
        elif system == GUNICORN:
            server = procs.start(
                "gunicorn",
                [
                    str(bindir / "gunicorn"),
                    "--workers",
                    "2",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "benchproject.wsgi:application",
                ],
                env=env,
                cwd=cwd,
            )
            members = {"gunicorn": server.pid}
            note = "sync workers close each connection after its reply (no keep-alive)"
        else:
            server = procs.start(
                "uvicorn",
                [
                    str(bindir / "uvicorn"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "benchproject.asgi:application",
                ],
                env=env,
                cwd=cwd,
            )
            members = {"uvicorn": server.pid}
        if redis is not None:
            assert redis.process is not None
            members["redis-server"] = redis.process.pid
        wait_for_port(port, server, START_TIMEOUT)
        http_get_ok(port, START_TIMEOUT)
        reply = _get_with_cookie(port, session_key)
        if not reply.startswith(b"HTTP/1.1 200") or VISITS not in reply:
            raise BenchError(f"{system}: the session was not read: {reply[-200:]!r}")
        yield Stack(system, port, members, session_key, note)
    finally:
        for proc in reversed(procs.procs):
            proc.kill()
        procs.procs.clear()
        if redis is not None:
            redis.stop()
        shutil.rmtree(work, ignore_errors=True)


def _row(
    system: str, connections: int, metrics: dict, spent: dict[str, float], *, others: float, note: str
) -> Row:
    cpu = sum(spent.values())
    good = max(0, metrics["requests"] - metrics["non_2xx"])
    metrics["cpu_s"] = round(cpu, 2)
    metrics["cpu_s_by_process"] = {name: round(seconds, 2) for name, seconds in spent.items()}
    metrics["requests_per_cpu_s"] = good / cpu if cpu else None
    metrics["other_cpu_s"] = round(others, 2)
    parts = [f"{metrics['requests_per_cpu_s'] or 0:,.0f} req/CPU-s"]
    parts.append("CPU s " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in spent.items()))
    # Everything else that ran on the machine meanwhile, wrk excluded: load that shared the cores.
    parts.append(f"other processes {others:.2f} CPU s")
    if metrics["non_2xx"] or metrics["socket_errors"]:
        parts.append(
            f"{metrics['non_2xx']:,} of {metrics['requests']:,} replies not 2xx, "
            f"{metrics['socket_errors']} socket errors"
        )
    if system == DAPHNE and connections <= 16:
        parts.append(POLL_NOTE)
    if note:
        parts.append(note)
    return Row(
        NAME, f"wrk c={connections}", system, "ok_requests_per_s", "req/s", metrics, note="; ".join(parts)
    )


def run(ctx: Context) -> list[Row]:
    if shutil.which("wrk") is None:
        raise Skip("wrk not installed (Debian: apt-get install wrk)")
    concurrencies = [1, 16, 64]
    seconds = ctx.pick(3, 10)
    rows: list[Row] = []
    with Processes(ctx.log_dir) as procs:
        for system in SYSTEMS:
            cases = [f"wrk c={c}" for c in concurrencies]
            slug = SLUGS[system]
            try:
                with running(system, ctx, procs) as stack:
                    cookie = [f"Cookie: sessionid={stack.session_key}"]
                    # Every worker thread and process past its first requests (imports, URL resolver).
                    wrk(ctx, procs, stack.port, 16, 1, headers=cookie, name=f"{slug}-warmup")
                    for connections in concurrencies:
                        before = cpu_snapshot(stack.members)
                        busy, children = machine_busy_seconds(), children_cpu_seconds()
                        metrics = wrk(ctx, procs, stack.port, connections, seconds, headers=cookie, name=slug)
                        spent = cpu_seconds(before, cpu_snapshot(stack.members))
                        busy, children = machine_busy_seconds() - busy, children_cpu_seconds() - children
                        others = max(0.0, busy - sum(spent.values()) - children)
                        rows.append(_row(system, connections, metrics, spent, others=others, note=stack.note))
            except (Skip, BenchError) as exc:
                reason = str(exc) if isinstance(exc, Skip) else f"error: {exc}"
                done = {row.case for row in rows if row.system == system}
                rows.extend(Row(NAME, case, system, skipped=reason) for case in cases if case not in done)
    return rows
