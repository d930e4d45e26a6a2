"""One way to log a channel layer outage, for the server and the worker.

A WARNING when the first failure comes, a WARNING with counts every
``summary_interval`` seconds while failures go on, an INFO once something
succeeds again — never a line (let alone a traceback) per failed request or
per retry. The summary is written by the next failure after the interval:
a layer nobody uses has nothing to report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

#: Seconds between two summaries while an outage lasts (``--outage-summary-interval``).
SUMMARY_INTERVAL = 60.0


class OutageLog:
    """Thread-safe: the worker's threads and the server's reactor both report here."""

    def __init__(self, logger: logging.Logger, summary_interval: float = SUMMARY_INTERVAL) -> None:
        self.logger = logger
        self.summary_interval = summary_interval
        #: Read without the lock on hot paths: a stale False only delays the INFO by one call.
        self.active = False
        self._lock = threading.Lock()
        self._since = 0.0
        self._next_summary = 0.0
        self._counts: Counter[str] = Counter()
        self._total: Counter[str] = Counter()

    def failed(self, what: str, error: BaseException) -> None:
        """One failure of kind ``what`` (``"sends failed"``, ``"receive retries"``, …)."""
        now = time.monotonic()
        with self._lock:
            self._counts[what] += 1
            self._total[what] += 1
            if not self.active:
                self.active = True
                self._since = now
                self._next_summary = now + self.summary_interval
                self.logger.warning(
                    "channel layer unavailable: %s: %s (a summary every %g s until it is back)",
                    type(error).__name__,
                    error,
                    self.summary_interval,
                )
            elif now >= self._next_summary:
                self._next_summary = now + self.summary_interval
                self.logger.warning(
                    "channel layer still unavailable after %.0f s: %s in the last %g s (last error: %s)",
                    now - self._since,
                    _describe(self._counts),
                    self.summary_interval,
                    error,
                )
                self._counts.clear()

    def recovered(self) -> None:
        with self._lock:
            if not self.active:
                return
            self.active = False
            self.logger.info(
                "channel layer available again after %.1f s: %s in all",
                time.monotonic() - self._since,
                _describe(self._total),
            )
            self._counts.clear()
            self._total.clear()


def _describe(counts: Counter[str]) -> str:
    return ", ".join(f"{count} {what}" for what, count in sorted(counts.items())) or "nothing failed"
