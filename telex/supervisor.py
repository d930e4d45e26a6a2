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

SIGUSR2 (``telex serve --workers``) replaces the children one at a time: a
new one starts on the same sockets, and once it tells it is ready (a byte
on the pipe ``TELEX_SUPERVISOR_READY_FD`` names) the old one is told to
drain. SIGHUP stays the children's TLS reload.
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
#: A replacement's end of the pipe on which it tells that it serves (rolling restarts).
READY_FD_VARIABLE = "TELEX_SUPERVISOR_READY_FD"

#: What starts a rolling restart: gunicorn's and uvicorn's SIGHUP is Telex's TLS reload,
#: and SIGUSR2 is what gunicorn's and nginx's masters take for "run the new code".
ROLL_SIGNAL = signal.SIGUSR2
#: Seconds a replacement has to become ready before the rolling restart is abandoned.
READY_TIMEOUT = 60.0

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


def tell_supervisor_ready() -> None:
    """Tell the supervisor that this process serves: a rolling restart waits for
    it before the old process drains. Nothing unless the supervisor asked."""
    fd = os.environ.pop(READY_FD_VARIABLE, None)
    if fd is None:
        return
    try:
        os.write(int(fd), b"1")
    except OSError as exc:  # the supervisor gave up on this process meanwhile
        logger.debug("could not tell the supervisor ready: %s", exc)
    finally:
        os.close(int(fd))


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


class Roll:
    """A rolling restart under way: the children still to replace, and the
    replacement for ``index`` while it starts (until it is ready or gives up)."""

    def __init__(self, count: int) -> None:
        self.waiting = list(range(count))
        self.replaced = 0
        self.index = 0
        self.replacement: subprocess.Popen | None = None
        self.ready_fd: int | None = None
        self.deadline = 0.0
        #: Another SIGUSR2 came meanwhile: roll again once this one ends.
        self.again = False


class Supervisor:
    """``count`` children running ``command``, sharing ``fds``.

    ``drain_signal`` is what tells a child to drain for its replacement
    (``telex serve``'s SIGUSR2); without one, rolling restarts are refused.
    """

    def __init__(
        self,
        command: Sequence[str],
        count: int,
        fds: Sequence[int] = (),
        *,
        env: dict[str, str] | None = None,
        reload_under: str | None = None,
        drain_signal: int | None = None,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        self.command = list(command)
        self.children = [Child(index) for index in range(count)]
        self.fds = list(fds)
        self.env = dict(os.environ if env is None else env)
        # systemd (Type=notify, NotifyAccess=main) hears from the supervisor, not its children.
        self.env.pop("NOTIFY_SOCKET", None)
        self.reload_under = reload_under
        self.drain_signal = drain_signal
        self.ready_timeout = ready_timeout
        self.roll: Roll | None = None
        #: Replaced children still draining, and replacements given up on: reaped, never restarted.
        self.leaving: list[tuple[int, subprocess.Popen]] = []
        self.stopping: int | None = None
        self.status = 0

    def run(self) -> int:
        """Start the children; return once all have exited after SIGTERM/SIGINT
        (0 if every child exited 0), or with 2 if a child reported a usage error."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD, ROLL_SIGNAL)
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
            while self._running() or self.stopping is None:
                now = time.monotonic()
                due = [child.restart_at for child in self.children if child.restart_at is not None]
                if snapshot is not None and self.stopping is None:
                    due.append(next_look)
                watched = [wake_read]
                if self.roll is not None and self.roll.replacement is not None:
                    due.append(self.roll.deadline)
                    if self.roll.ready_fd is not None:
                        watched.append(self.roll.ready_fd)
                timeout = max(0.0, min(due) - now) if due else None
                readable, _, _ = select.select(watched, [], [], timeout)
                signums = os.read(wake_read, 1024) if wake_read in readable else b""
                for signum in signums:
                    self._on_signal(signum)
                self._reap()
                if self.roll is not None:
                    self._advance_roll()
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
            if self.roll is not None and self.roll.ready_fd is not None:
                os.close(self.roll.ready_fd)
            shutil.rmtree(self.directory, ignore_errors=True)
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.close(wake_read)
            os.close(wake_write)
        return self.status

    def _start(self, child: Child) -> None:
        child.process = self._spawn(child.index)
        child.started = time.monotonic()
        child.restart_at = None

    def _spawn(self, index: int, ready_fd: int | None = None) -> subprocess.Popen:
        env = dict(
            self.env,
            **{
                CHILD_VARIABLE: str(index),
                COUNT_VARIABLE: str(len(self.children)),
                FDS_VARIABLE: ",".join(map(str, self.fds)),
                PARENT_VARIABLE: str(os.getpid()),
                SHARED_DIRECTORY_VARIABLE: self.directory,
            },
        )
        fds = list(self.fds)
        if ready_fd is not None:
            env[READY_FD_VARIABLE] = str(ready_fd)
            fds.append(ready_fd)
        # A process group of its own: Ctrl-C in a terminal reaches only the
        # supervisor, which passes it on once (twice would mean "exit now").
        process = subprocess.Popen(self.command, env=env, pass_fds=fds, process_group=0)
        logger.info("started process %d (pid %d)", index, process.pid)
        return process

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            return
        if signum == signal.SIGHUP:
            self._send(signal.SIGHUP)
            return
        if signum == ROLL_SIGNAL:
            self._begin_roll()
            return
        # A second SIGTERM/SIGINT goes on to the children too, which then exit at once.
        if self.stopping is None:
            logger.info("received %s; stopping %d process(es)", signal.Signals(signum).name, self._running())
            self.stopping = signum
            notify_systemd(b"STOPPING=1")
            self._end_roll()
        self._send(signum)

    def _processes(self) -> list[subprocess.Popen]:
        """Every process of the group still to reap: children, leaving ones, a replacement."""
        processes = [child.process for child in self.children if child.process is not None]
        processes += [process for _, process in self.leaving]
        if self.roll is not None and self.roll.replacement is not None:
            processes.append(self.roll.replacement)
        return processes

    def _send(self, signum: int) -> None:
        for process in self._processes():
            if process.poll() is None:
                process.send_signal(signum)

    def _running(self) -> int:
        return len(self._processes())

    def _reap(self) -> None:
        for index, process in list(self.leaving):
            if process.poll() is not None:
                self.leaving.remove((index, process))
                self._reaped_leaving(index, process)
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
                self._end_roll()
                self._send(signal.SIGTERM)
                continue
            if time.monotonic() - child.started >= STABLE_AFTER:
                child.delay = FIRST_DELAY
            logger.warning(
                "process %d (pid %d) exited with %s; restarting in %g s",
                child.index,
                pid,
                _how(code),
                child.delay,
            )
            child.restart_at = time.monotonic() + child.delay
            child.delay = min(child.delay * 2, LAST_DELAY)

    def _reaped_leaving(self, index: int, process: subprocess.Popen) -> None:
        """A replaced child or an abandoned replacement exited: nothing to restart, and
        its files (``<index>.*``) are the current child's now."""
        code = process.returncode
        if self.stopping is not None:
            if code not in (0, -self.stopping):
                self.status = self.status or 1
            return
        if code == 0:
            logger.info("rolling restart: old process %d (pid %d) drained and exited", index, process.pid)
        else:
            logger.warning(
                "rolling restart: pid %d (process %d) exited with %s", process.pid, index, _how(code)
            )

    # -- rolling restarts -----------------------------------------------------------------

    def _begin_roll(self) -> None:
        if self.stopping is not None:
            return
        if self.drain_signal is None:
            logger.warning("received SIGUSR2: rolling restarts are for telex serve --workers; ignored")
            return
        if self.roll is not None:
            self.roll.again = True
            logger.info("received SIGUSR2 during a rolling restart: another one follows when this one ends")
            return
        logger.info("received SIGUSR2: rolling restart of %d process(es), one at a time", len(self.children))
        self.roll = Roll(len(self.children))
        self._replace_next()

    def _replace_next(self) -> None:
        """Start the replacement for the next child still running, or end the roll."""
        roll = self.roll
        assert roll is not None
        while roll.waiting:
            index = roll.waiting.pop(0)
            old = self.children[index].process
            if old is None:
                logger.info("rolling restart: process %d is not running; it starts with the new code", index)
                continue
            ready_read, ready_write = os.pipe()
            try:
                roll.replacement = self._spawn(index, ready_write)
            finally:
                os.close(ready_write)
            roll.index, roll.ready_fd = index, ready_read
            roll.deadline = time.monotonic() + self.ready_timeout
            logger.info(
                "rolling restart: waiting for process %d (pid %d) to be ready before pid %d drains",
                index,
                roll.replacement.pid,
                old.pid,
            )
            return
        logger.info("rolling restart done: %d process(es) replaced", roll.replaced)
        self._end_roll()

    def _advance_roll(self) -> None:
        """The replacement under way: ready (the old child drains, the next one's turn),
        exited, or late (the roll is abandoned and the old child kept)."""
        roll = self.roll
        assert roll is not None
        replacement = roll.replacement
        if replacement is None:
            return
        told = b""
        if roll.ready_fd is not None and select.select([roll.ready_fd], [], [], 0)[0]:
            told = os.read(roll.ready_fd, 1)
            if not told:  # it closed the pipe: exited, or about to
                os.close(roll.ready_fd)
                roll.ready_fd = None
        if told:
            self._take_over(roll, replacement)
            self._replace_next()
            return
        old = self.children[roll.index].process
        keeping = "the old one keeps serving" if old is not None else "the old one is being restarted"
        code = replacement.poll()
        if code is not None:
            logger.error(
                "rolling restart abandoned: new process %d (pid %d) exited with %s before it was ready; %s",
                roll.index,
                replacement.pid,
                _how(code),
                keeping,
            )
        elif time.monotonic() >= roll.deadline:
            logger.error(
                "rolling restart abandoned: new process %d (pid %d) not ready after %g s, killed; %s",
                roll.index,
                replacement.pid,
                self.ready_timeout,
                keeping,
            )
            replacement.kill()
            self.leaving.append((roll.index, replacement))
        else:
            return
        roll.replacement = None
        self._end_roll()

    def _take_over(self, roll: Roll, replacement: subprocess.Popen) -> None:
        """The replacement is ready: it becomes the child, and the old process drains."""
        assert roll.ready_fd is not None and self.drain_signal is not None
        os.close(roll.ready_fd)
        roll.ready_fd = None
        roll.replacement = None
        roll.replaced += 1
        child = self.children[roll.index]
        old = child.process
        child.process, child.started, child.restart_at = replacement, time.monotonic(), None
        if old is None or old.poll() is not None:  # it died meanwhile; _reap takes it from the list
            logger.info("rolling restart: process %d (pid %d) is ready", roll.index, replacement.pid)
            if old is not None:
                self.leaving.append((roll.index, old))
            return
        old.send_signal(self.drain_signal)
        self.leaving.append((roll.index, old))
        logger.info(
            "rolling restart: process %d (pid %d) is ready; old pid %d drains",
            roll.index,
            replacement.pid,
            old.pid,
        )

    def _end_roll(self) -> None:
        """Forget the roll (a replacement still starting is kept to reap), then start
        the one asked for meanwhile, unless stopping."""
        roll, self.roll = self.roll, None
        if roll is None:
            return
        if roll.ready_fd is not None:
            os.close(roll.ready_fd)
        if roll.replacement is not None:
            self.leaving.append((roll.index, roll.replacement))
        if roll.again and self.stopping is None:
            self._begin_roll()

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


def _how(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"status {code}"


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


def run_supervised(
    words: Sequence[str], count: int, fds: Sequence[int], reload: bool, drain_signal: int | None = None
) -> int:
    """Supervise ``count`` copies of ``telex WORDS`` (this command line again).

    Logging is the caller's (``telex._logging``), so ``-v 0`` keeps the supervisor
    to its warnings (a child's exit, a restart), as it does the children.
    ``drain_signal``: what tells a child to drain for its replacement (rolling restarts).
    """
    command = [sys.executable, "-m", "telex", *words]
    supervisor = Supervisor(
        command, count, fds, reload_under=os.getcwd() if reload else None, drain_signal=drain_signal
    )
    if reload:
        logger.warning("--reload is for development: restarting on changes under %s", os.getcwd())
    return supervisor.run()
