"""Real Telex processes for end-to-end tests.

A process is started with ``sys.executable -m telex ...`` and the repository
on PYTHONPATH; start-up is detected by reading its own log line (``listening
on``), never by sleeping. Its output is collected in a thread so tests can
wait for a log line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from tests.support.redis_server import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def telex_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # Nothing of the test process's own Telex or Django configuration leaks into a child.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEX_", "DJANGO_"))}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class TelexProcess:
    """``telex ARGS`` as a child process, its output kept for assertions."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str] | None = None,
        ready: str | None = "listening on",
        pass_fds: Sequence[int] = (),
        cwd: str = ROOT,
        command: Sequence[str] = (sys.executable, "-m", "telex"),
    ) -> None:
        self.args = list(args)
        self.command = list(command)  # what ARGS follow: another telex, or a launcher before it
        self.env = telex_env(env)
        self.ready = ready
        self.pass_fds = tuple(pass_fds)
        self.cwd = cwd
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> TelexProcess:
        self.process = subprocess.Popen(
            [*self.command, *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            cwd=self.cwd,
            pass_fds=self.pass_fds,
        )
        self._collector = threading.Thread(target=self._collect, daemon=True)
        self._collector.start()
        if self.ready is not None:
            self.wait_for(self.ready, timeout)
        return self

    def _collect(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait until a line matches ``pattern`` (a regex); fail with the output."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                # All output read and the process gone: the line will never come.
                finished = not self._collector.is_alive()
                if remaining <= 0 or finished:
                    raise AssertionError(f"no line matching {pattern!r}; output:\n{self.output}")
                self._changed.wait(min(remaining, 0.5))

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def __enter__(self) -> TelexProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_telex(
    args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run ``telex ARGS`` to completion (for CLI errors and --help)."""
    return subprocess.run(
        [sys.executable, "-m", "telex", *args],
        capture_output=True,
        text=True,
        env=telex_env(env),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


class TelexServer(TelexProcess):
    """``telex serve`` on a free loopback port."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, port: int | None = None, **kwargs
    ) -> None:
        self.port = port or free_port()
        super().__init__(["serve", *args, "-b", "127.0.0.1", "-p", str(self.port)], env=env, **kwargs)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)
