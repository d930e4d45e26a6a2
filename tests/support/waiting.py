"""Bounded waits for conditions that only time brings about."""

from __future__ import annotations

import time


def wait_until(predicate, timeout=5.0, interval=0.01):
    """Wait for a condition that time alone brings about (expiry), bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
