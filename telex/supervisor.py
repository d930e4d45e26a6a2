"""Run N copies of a Telex command and keep them running (``--workers``,
``--processes``, ``--reload``).

The supervisor is a plain process without a reactor: it holds the listening
sockets (children inherit them, so replacing a child never closes a socket
and no queued connection is lost), starts the children, forwards signals,
restarts a child that died with a growing delay, and exits with one status.
Its loop sleeps in ``select`` on the signal wake-up pipe, waking for a
signal, a restart that is due, or (``--reload``) the next look at the files.

A child knows it is one from ``TELEX_SUPERVISOR_CHILD`` (its index, out of
``TELEX_SUPERVISOR_COUNT``) and finds the inherited sockets in ``TELEX_SUPERVISOR_FDS``.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence

logger = logging.getLogger("telex.supervisor")

CHILD_VARIABLE = "TELEX_SUPERVISOR_CHILD"
COUNT_VARIABLE = "TELEX_SUPERVISOR_COUNT"
FDS_VARIABLE = "TELEX_SUPERVISOR_FDS"
PARENT_VARIABLE = "TELEX_SUPERVISOR_PID"
#: A directory the children share (``telex._process_group``); a child's
#: files, named ``<index>.*``, are removed when it exits.
SHARED_DIRECTORY_VARIABLE = "TELEX_SUPERVISOR_DIR"

#: Restart delays double from the first to the last; a child that ran this
#: long before dying starts the series again.
FIRST_DELAY = 0.5
LAST_DELAY = 30.0
STABLE_AFTER = 30.0
#: The exit status of a user's mistake (``telex.cli.UsageError``): restarting
#: cannot fix it, so the supervisor stops with it.
USAGE_ERROR = 2
#: Seconds between two looks at the files under ``--reload``.
RELOAD_INTERVAL = 1.0
#: Directories ``--reload`` never looks into.
IGNORED_DIRECTORIES = frozenset(
    {".git", "__pycache__", ".venv", "venv", "node_modules", ".tox", ".mypy_cache"}
)


def child_index() -> int | None:
    """This process's index among its supervisor's children; None if not supervised."""
    value = os.environ.get(CHILD_VARIABLE)
    return None if value is None else int(value)


def supervisor_gone() -> bool:
    """True once the supervisor died without stopping this child (SIGKILL, OOM):
    the child was then handed to another parent and should stop on its own."""
    return os.getppid() != int(os.environ.get(PARENT_VARIABLE, os.getppid()))


def notify_systemd(state: bytes) -> None:
    """sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state)
    except OSError as exc:
        logger.warning("could not notify systemd (%s): %s", state.decode(), exc)


def inherited_fds() -> list[int]:
    return [int(fd) for fd in os.environ.get(FDS_VARIABLE, "").split(",") if fd]


class Child:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: subprocess.Popen | None = None
        self.started = 0.0
        self.delay = FIRST_DELAY
        self.restart_at: float | None = None
        #: Stopped by ``--reload``: starts again as soon as it has exited.
        self.reloading = False


class Supervisor:
    """``count`` children running ``command``, sharing ``fds``."""

    def __init__(
        self,
        command: Sequence[str],
        count: int,
        fds: Sequence[int] = (),
        *,
        env: dict[str, str] | None = None,
        reload_under: str | None = None,
    ) -> None:
        self.command = list(command)
        self.children = [Child(index) for index in range(count)]
        self.fds = list(fds)
        self.env = dict(os.environ if env is None else env)
        # systemd (Type=notify, NotifyAccess=main) hears from the supervisor, not its children.
        self.env.pop("NOTIFY_SOCKET", None)
        self.reload_under = reload_under
        self.stopping: int | None = None
        self.status = 0

    def run(self) -> int:
        """Start the children; return once all have exited after SIGTERM/SIGINT
        (0 if every child exited 0), or with 2 if a child reported a usage error."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
        previous = {signum: signal.signal(signum, lambda *_: None) for signum in handled}
        old_wakeup = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        snapshot = self._files_snapshot() if self.reload_under else None
        self.directory = tempfile.mkdtemp(prefix="telex-supervisor-")
        try:
            for child in self.children:
                self._start(child)
            # The sockets listen already: connections wait in their queue until a child accepts.
            notify_systemd(b"READY=1")
            next_look = time.monotonic() + RELOAD_INTERVAL
            while any(child.process is not None for child in self.children) or self.stopping is None:
                now = time.monotonic()
                due = [child.restart_at for child in self.children if child.restart_at is not None]
                if snapshot is not None and self.stopping is None:
                    due.append(next_look)
                timeout = max(0.0, min(due) - now) if due else None
                readable, _, _ = select.select([wake_read], [], [], timeout)
                signums = os.read(wake_read, 1024) if readable else b""
                for signum in signums:
                    self._on_signal(signum)
                self._reap()
                now = time.monotonic()
                for child in self.children:
                    if child.restart_at is not None and child.restart_at <= now and self.stopping is None:
                        self._start(child)
                if snapshot is not None and self.stopping is None and now >= next_look:
                    next_look = now + RELOAD_INTERVAL
                    current = self._files_snapshot()
                    if current != snapshot:
                        changed = sorted(set(current.items()) ^ set(snapshot.items()))[0][0]
                        snapshot = current
                        logger.warning("%s changed; restarting", os.path.relpath(changed))
                        self._restart_all()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.close(wake_read)
            os.close(wake_write)
        return self.status

    def _start(self, child: Child) -> None:
        env = dict(
            self.env,
            **{
                CHILD_VARIABLE: str(child.index),
                COUNT_VARIABLE: str(len(self.children)),
                FDS_VARIABLE: ",".join(map(str, self.fds)),
                PARENT_VARIABLE: str(os.getpid()),
                SHARED_DIRECTORY_VARIABLE: self.directory,
            },
        )
        # A process group of its own: Ctrl-C in a terminal reaches only the
        # supervisor, which passes it on once (twice would mean "exit now").
        child.process = subprocess.Popen(self.command, env=env, pass_fds=self.fds, process_group=0)
        child.started = time.monotonic()
        child.restart_at = None
        logger.info("started process %d (pid %d)", child.index, child.process.pid)

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            return
        if signum == signal.SIGHUP:
            self._send(signal.SIGHUP)
            return
        # A second SIGTERM/SIGINT goes on to the children too, which then exit at once.
        if self.stopping is None:
            logger.info("received %s; stopping %d process(es)", signal.Signals(signum).name, self._running())
            self.stopping = signum
            notify_systemd(b"STOPPING=1")
        self._send(signum)

    def _send(self, signum: int) -> None:
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signum)

    def _running(self) -> int:
        return sum(child.process is not None for child in self.children)

    def _reap(self) -> None:
        for child in self.children:
            if child.process is None or child.process.poll() is None:
                continue
            code = child.process.returncode
            pid = child.process.pid
            child.process = None
            for name in os.listdir(self.directory):
                if name.split(".")[0] == str(child.index):
                    os.unlink(os.path.join(self.directory, name))
            if child.reloading:
                child.reloading = False
                child.restart_at = time.monotonic()
                continue
            if self.stopping is not None:
                # Killed by the very signal passed on: it was still starting, which is no failure.
                if code not in (0, -self.stopping):
                    self.status = self.status or 1
                continue
            if self.reload_under is not None:
                # Most likely the user's code fails to import: the next change restarts it.
                logger.warning("process %d exited with status %d; waiting for a change", child.index, code)
                continue
            if code == USAGE_ERROR:
                logger.error("process %d (pid %d) exited with a usage error; stopping", child.index, pid)
                self.status = USAGE_ERROR
                self.stopping = signal.SIGTERM
                self._send(signal.SIGTERM)
                continue
            if time.monotonic() - child.started >= STABLE_AFTER:
                child.delay = FIRST_DELAY
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"status {code}"
            logger.warning(
                "process %d (pid %d) exited with %s; restarting in %g s", child.index, pid, how, child.delay
            )
            child.restart_at = time.monotonic() + child.delay
            child.delay = min(child.delay * 2, LAST_DELAY)

    def _restart_all(self) -> None:
        """Stop every child gracefully; each starts again once it has exited."""
        for child in self.children:
            if child.process is None:
                child.restart_at = time.monotonic()
            else:
                child.reloading = True
                child.process.send_signal(signal.SIGTERM)

    def _files_snapshot(self) -> dict[str, float]:
        return {path: mtime for path, mtime in watched_files(self.reload_under or ".")}


def watched_files(root: str) -> Iterator[tuple[str, float]]:
    """``(path, mtime)`` of the Python files under ``root``, outside virtualenvs,
    ``.git`` and ``__pycache__``: what ``--reload`` watches."""
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [
            name
            for name in subdirectories
            if name not in IGNORED_DIRECTORIES
            and not os.path.exists(os.path.join(directory, name, "pyvenv.cfg"))
        ]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                try:
                    yield path, os.stat(path).st_mtime
                except FileNotFoundError:
                    continue


def run_supervised(words: Sequence[str], count: int, fds: Sequence[int], reload: bool) -> int:
    """Supervise ``count`` copies of ``telex WORDS`` (this command line again).

    Logging is the caller's (``telex._logging``), so ``-v 0`` keeps the supervisor
    to its warnings (a child's exit, a restart), as it does the children.
    """
    command = [sys.executable, "-m", "telex", *words]
    supervisor = Supervisor(command, count, fds, reload_under=os.getcwd() if reload else None)
    if reload:
        logger.warning("--reload is for development: restarting on changes under %s", os.getcwd())
    return supervisor.run()
