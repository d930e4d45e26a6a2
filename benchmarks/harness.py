"""Process control, timing and machine facts shared by every scenario.

Every process a scenario needs is started through :class:`Processes`, which
puts each in its own session so that leaving the ``with`` block (normally,
on a timeout or on Ctrl-C) kills the whole tree. Every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"


class BenchError(RuntimeError):
    """A run that could not produce a figure; the message says why."""


class Skip(Exception):
    """A row that cannot run here (a missing tool or a Telex part not yet built)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for children: the worktree first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def raise_nofile() -> None:
    """Lift the open-file limit to its hard maximum; children inherit it.

    ws-idle and ws-fanout open up to 10,000 sockets per process.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Proc:
    """One child process whose output goes to a log file (never a pipe that can fill)."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        log_dir: Path,
        *,
        env: dict[str, str] | None,
        cwd: str | None,
        stdin: bool,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed by kill(), after the child
        self.popen = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            env=env if env is not None else child_env(),
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 8) -> str:
        return "\n".join(self.output().strip().splitlines()[-lines:])

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(f"{self.name} did not finish within {timeout:.0f} s") from None

    def kill(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
            except ProcessLookupError:
                pass
        else:
            # The leader is gone; its group may still hold children.
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.popen.stdin:
            self.popen.stdin.close()
        self._log.close()


class Processes:
    """Start children; kill all of them when the block ends, whatever happens."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[Proc] = []

    def start(
        self,
        name: str,
        args: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        stdin: bool = False,
    ) -> Proc:
        proc = Proc(name, args, self.log_dir, env=env, cwd=cwd, stdin=stdin)
        self.procs.append(proc)
        return proc

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            proc.kill()


def wait_for_port(port: int, proc: Proc, timeout: float) -> None:
    """Wait until something accepts on 127.0.0.1:port, or the process dies."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited with status {proc.popen.returncode}: {proc.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(delay)  # nothing to wait on but the port itself
            delay = min(delay * 2, 0.2)
    raise BenchError(f"{proc.name} did not listen on port {port} within {timeout:.0f} s: {proc.tail()}")


def wait_for_line(proc: Proc, text: str, timeout: float) -> str:
    """Wait until the process's log contains a line with ``text``; return that line."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        for line in proc.output().splitlines():
            if text in line:
                return line
        if not proc.alive():
            raise BenchError(f"{proc.name} exited with status {proc.popen.returncode}: {proc.tail()}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    raise BenchError(f"{proc.name} printed no {text!r} within {timeout:.0f} s: {proc.tail()}")


def run_json(
    procs: Processes, name: str, args: Sequence[str], timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run a client to completion; its last stdout line is its JSON result."""
    proc = procs.start(name, args, env=env)
    status = proc.wait(timeout)
    if status != 0:
        raise BenchError(f"{name} exited with status {status}: {proc.tail()}")
    for line in reversed(proc.output().strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise BenchError(f"{name} printed no JSON result: {proc.tail()}")


def rss_kb(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process in KiB, from /proc."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


def tree_rss_kb(pid: int) -> int:
    """RSS of a process plus its descendants (a server with worker children)."""
    total = 0
    for child in [pid, *_descendants(pid)]:
        try:
            total += rss_kb(child)[0]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def _descendants(pid: int) -> list[int]:
    found = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found.append(child)
        found.extend(_descendants(child))
    return found


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_mb": memory_kb // 1024,
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "loadavg_at_start": list(os.getloadavg()),
    }


def make_log_dir() -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="logs-", dir=RESULTS_DIR))
