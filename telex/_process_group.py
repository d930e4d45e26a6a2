"""Metrics and health of every process under one supervisor (``telex serve
--workers N``, ``telex worker --processes N``).

The kernel hands a scrape or a health probe to whichever child accepts it,
so each child writes what it knows into the directory its supervisor shares
with all children, once a second: ``<index>.prom`` (its metrics text) and
``<index>.health`` (one word, its state). The child that takes the request
answers with its own live values plus the others' files: metrics with every
sample labelled ``process="i"``; health ready only when every child is.
Standard library only, and no server code: the worker uses it too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from .supervisor import COUNT_VARIABLE, SHARED_DIRECTORY_VARIABLE, child_index

#: A process's file older than this belongs to a child that is gone or stuck.
STALE_AFTER = 5.0
WRITE_INTERVAL = 1.0
#: The state of a process that is ready; any other word means not ready.
READY = "ok"


class ProcessGroup:
    """One child's view of its group: ``render`` gives its metrics text (None:
    no metrics path), ``state`` its health in one word (``READY`` or why not)."""

    def __init__(
        self,
        directory: str,
        index: int,
        count: int,
        render: Callable[[], bytes] | None,
        state: Callable[[], str],
    ) -> None:
        self.directory = directory
        self.index = index
        self.count = count
        self._render = render
        self._state = state

    def write(self) -> None:
        """Publish this process's metrics and state for the others (each written
        aside, then renamed: never half a file)."""
        if self._render is not None:
            self._publish("prom", self._render())
        self._publish("health", self._state().encode())

    def _publish(self, extension: str, content: bytes) -> None:
        path = os.path.join(self.directory, f"{self.index}.{extension}")
        with open(path + ".tmp", "wb") as file:
            file.write(content)
        os.replace(path + ".tmp", path)

    def _read_others(self, extension: str) -> dict[int, str | None]:
        """The other children's fresh files; None for a stale one (a stopped or stuck process)."""
        found: dict[int, str | None] = {}
        now = time.time()
        for name in os.listdir(self.directory):
            index_text, _, found_extension = name.partition(".")
            if found_extension != extension or not index_text.isdigit() or int(index_text) == self.index:
                continue
            path = os.path.join(self.directory, name)
            try:
                if now - os.stat(path).st_mtime > STALE_AFTER:
                    found[int(index_text)] = None
                    continue
                with open(path, encoding="utf-8") as file:
                    found[int(index_text)] = file.read()
            except FileNotFoundError:
                continue
        return found

    def render(self) -> bytes:
        """Every live child's metrics, each sample labelled with its process."""
        assert self._render is not None  # only called for the metrics path
        texts = {self.index: self._render().decode()}
        texts.update((index, text) for index, text in self._read_others("prom").items() if text is not None)
        return merge(texts)

    def states(self, own: str) -> dict[str, str]:
        """``{"0": "ok", "1": "not running", ...}`` for every child, this one's given as ``own``.

        A child without a file is starting or being replaced (the supervisor
        removes a child's files when it exits); one whose file went stale is
        stopped or stuck (SIGSTOP, a blocked event loop).
        """
        others = self._read_others("health")
        states = {}
        for index in range(self.count):
            if index == self.index:
                states[str(index)] = own
            elif index not in others:
                states[str(index)] = "not running"
            else:
                states[str(index)] = others[index] or "unresponsive"
        return states


def group_from_environment(
    render: Callable[[], bytes] | None, state: Callable[[], str]
) -> ProcessGroup | None:
    """This child's group, or None when no supervisor started this process."""
    index = child_index()
    directory = os.environ.get(SHARED_DIRECTORY_VARIABLE)
    count = os.environ.get(COUNT_VARIABLE)
    if index is None or not directory or not count:
        return None
    return ProcessGroup(directory, index, int(count), render, state)


def group_health(group: ProcessGroup | None, status: int, body: dict[str, str], own: str) -> tuple[int, dict]:
    """A health answer for the whole group from this child's own (``status``,
    ``body``, and ``own``: its state in one word): ready (200) only when every
    child is, with each child's state under ``processes``. Without a group: unchanged."""
    if group is None:
        return status, body
    states = group.states(own)
    if all(state == READY for state in states.values()):
        return 200, {**body, "processes": states}
    return 503, {**body, "status": "down", "processes": states}


def merge(texts: dict[int, str]) -> bytes:
    """One exposition from several: each family's HELP and TYPE once, then its
    samples from every process with a ``process`` label (the text format wants
    a family's samples together)."""
    comments: dict[str, list[str]] = {}  # by family, in order of first appearance
    samples: dict[str, list[str]] = {}
    for index in sorted(texts):
        family = ""
        for line in texts[index].splitlines():
            if line.startswith("# "):
                words = line.split(" ", 3)
                family = words[2] if len(words) > 2 else ""
                seen = comments.setdefault(family, [])
                if line not in seen:
                    seen.append(line)
            elif line.strip():
                comments.setdefault(family, [])
                samples.setdefault(family, []).append(_labelled(line, index))
    lines = []
    for family, family_comments in comments.items():
        lines += family_comments + samples.get(family, [])
    return ("\n".join(lines) + "\n").encode()


def _labelled(sample: str, index: int) -> str:
    name_end = min(position for position in (sample.find("{"), sample.find(" ")) if position >= 0)
    name, rest = sample[:name_end], sample[name_end:]
    if rest.startswith("{}"):
        rest = rest[2:]
    if rest.startswith("{"):
        return f'{name}{{process="{index}",{rest[1:]}'
    return f'{name}{{process="{index}"}}{rest}'
