"""Prometheus text-format primitives shared by the server and the worker.

Counters, gauges read at scrape time, histograms, and the standard
``process_*`` series read from ``/proc``. Standard library only, and no
server code: a worker imports this without loading Twisted. It lives at
the top of the package because the server and the worker both use it and
neither may import the other.
"""

from __future__ import annotations

import os
import resource
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable

#: Upper bounds (seconds) of latency buckets: 0.5 ms to 30 s, enough for a
#: layer round trip on the same host and a slow consumer alike.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Labels = tuple[tuple[str, str], ...]

PROCESS_HELP = {
    "process_cpu_seconds_total": ("counter", "User and system CPU time spent, in seconds."),
    "process_resident_memory_bytes": ("gauge", "Resident memory size in bytes."),
    "process_virtual_memory_bytes": ("gauge", "Virtual memory size in bytes."),
    "process_open_fds": ("gauge", "Open file descriptors."),
    "process_max_fds": ("gauge", "Most open file descriptors allowed."),
    "process_start_time_seconds": ("gauge", "Start time of the process since the Unix epoch, in seconds."),
}


class Histogram:
    """Observations counted into buckets (``le`` = less than or equal), with their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Iterable[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def samples(self, name: str, labels: Labels) -> list[str]:
        lines = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            lines.append(_sample(f"{name}_bucket", (*labels, ("le", le)), running))
        lines.append(_sample(f"{name}_sum", labels, self.sum))
        lines.append(_sample(f"{name}_count", labels, running))
        return lines


class Registry:
    """Counters kept here, gauges read when scraped, histograms; ``help``
    gives each name its type and help line.

    Not locked: the server counts on its reactor thread only; the worker
    takes its own lock around every change and the rendering.
    """

    def __init__(self, help: dict[str, tuple[str, str]]) -> None:
        self.help = {**help, **PROCESS_HELP}
        self.counters: dict[tuple[str, Labels], float] = defaultdict(float)
        self.gauges: dict[str, Callable[[], float]] = {}
        self.histograms: dict[tuple[str, Labels], Histogram] = {}

    def count(self, name: str, amount: float = 1, **labels: str) -> None:
        self.counters[(name, tuple(sorted(labels.items())))] += amount

    def histogram(self, name: str, **labels: str) -> Histogram:
        """The histogram ``name`` with ``labels``, made on first use."""
        key = (name, tuple(sorted(labels.items())))
        found = self.histograms.get(key)
        if found is None:
            found = self.histograms[key] = Histogram()
        return found

    def render(self) -> bytes:
        lines: list[str] = []
        seen: set[str] = set()

        def head(name: str) -> None:
            if name not in seen:
                seen.add(name)
                kind, text = self.help.get(name, ("untyped", name))
                lines.append(f"# HELP {name} {text}")
                lines.append(f"# TYPE {name} {kind}")

        gauges = [((name, ()), read()) for name, read in self.gauges.items()]
        for (name, labels), value in sorted(self.counters.items()) + gauges + process_samples():
            head(name)
            lines.append(_sample(name, labels, value))
        for (name, labels), histogram in sorted(self.histograms.items()):
            head(name)
            lines.extend(histogram.samples(name, labels))
        return ("\n".join(lines) + "\n").encode()


def _escape_label(value: str) -> str:
    # The text format's escapes for label values: backslash, quote, newline.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    # Whole numbers in full (``:g`` would round a start time or a large
    # counter to six digits); fractions as Python's shortest repr.
    if value == int(value):
        return str(int(value))
    return repr(float(value))


def _sample(name: str, labels: Labels, value: float) -> str:
    if not labels:
        return f"{name} {_number(value)}"
    label_text = ",".join(f'{key}="{_escape_label(val)}"' for key, val in labels)
    return f"{name}{{{label_text}}} {_number(value)}"


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = resource.getpagesize()


def _boot_time() -> float | None:
    try:
        with open("/proc/stat", "rb") as stat:
            for line in stat:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def process_samples() -> list[tuple[tuple[str, Labels], float]]:
    """The ``process_*`` series of this process, read from ``/proc`` (none where it is missing)."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            # The command name (field 2) may hold spaces: split after its ')'.
            fields = stat.read().rsplit(b")", 1)[1].split()
        open_fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        return []
    # fields[0] is field 3 of proc(5): utime is 14, stime 15, starttime 22, vsize 23, rss 24.
    samples: list[tuple[tuple[str, Labels], float]] = [
        (("process_cpu_seconds_total", ()), (int(fields[11]) + int(fields[12])) / _TICKS),
        (("process_virtual_memory_bytes", ()), float(fields[20])),
        (("process_resident_memory_bytes", ()), float(int(fields[21]) * _PAGE)),
        (("process_open_fds", ()), float(open_fds)),
        (("process_max_fds", ()), float(resource.getrlimit(resource.RLIMIT_NOFILE)[0])),
    ]
    boot = _boot_time()
    if boot is not None:
        samples.append((("process_start_time_seconds", ()), boot + int(fields[19]) / _TICKS))
    return samples
