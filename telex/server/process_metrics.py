"""``/metrics`` of every process under one supervisor (``--workers N``).

The kernel hands a scrape to whichever child accepts it, so each child
writes its own metrics text into the directory its supervisor shares with
all children, once a second, and the child that takes a scrape answers with
its own live values plus the others' files, every sample labelled
``process="i"``. Only the text format is relied on, not ``Metrics``
internals: whatever the metrics module renders is passed on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

#: A process's file older than this belongs to a child that is gone.
STALE_AFTER = 5.0
WRITE_INTERVAL = 1.0


class ProcessGroupMetrics:
    def __init__(self, directory: str, index: int, render: Callable[[], bytes]) -> None:
        self.directory = directory
        self.index = index
        self._render = render

    def write(self) -> None:
        """Publish this process's metrics for the others (written aside, then renamed: never half a file)."""
        path = os.path.join(self.directory, f"{self.index}.prom")
        with open(path + ".tmp", "wb") as file:
            file.write(self._render())
        os.replace(path + ".tmp", path)

    def render(self) -> bytes:
        texts = {self.index: self._render().decode()}
        now = time.time()
        for name in os.listdir(self.directory):
            index_text, _, extension = name.partition(".")
            if extension != "prom" or not index_text.isdigit() or int(index_text) == self.index:
                continue
            path = os.path.join(self.directory, name)
            try:
                if now - os.stat(path).st_mtime > STALE_AFTER:
                    continue
                with open(path, encoding="utf-8") as file:
                    texts[int(index_text)] = file.read()
            except FileNotFoundError:
                continue
        return merge(texts)


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
