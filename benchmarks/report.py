"""The printed table and the target checks from issue 9."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .results_model import (
    ASGI_REDIS,
    DAPHNE,
    DAPHNE4,
    DAPHNE_TELEX,
    GUNICORN,
    HYPERCORN,
    ROUND_TRIPS,
    TELEX_LAYER,
    TELEX_MEMORY,
    TELEX_REDIS,
    TWISTED_BARE,
    UVICORN,
    UVICORN_ASYNCIO,
    Row,
)

PEERS = (
    DAPHNE,
    DAPHNE_TELEX,
    ASGI_REDIS,
    TWISTED_BARE,
    ROUND_TRIPS,
    GUNICORN,
    UVICORN,
    UVICORN_ASYNCIO,
    HYPERCORN,
    DAPHNE4,
)
SHORT = {
    DAPHNE: "daphne",
    DAPHNE_TELEX: "daphne+telex",
    ASGI_REDIS: "asgi_redis",
    TWISTED_BARE: "twisted",
    ROUND_TRIPS: "floor",
    GUNICORN: "gunicorn",
    UVICORN: "uvicorn",
    UVICORN_ASYNCIO: "uvicorn-asyncio",
    HYPERCORN: "hypercorn",
    DAPHNE4: "daphne4",
}


def fmt(value: Any) -> str:
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "-" if value is None else str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def latency_cells(row: Row) -> tuple[str, str]:
    for unit in ("ms", "us"):
        if f"p50_{unit}" in row.metrics:
            p50, p99 = row.metrics[f"p50_{unit}"], row.metrics.get(f"p99_{unit}")
            return f"{fmt(p50)} {unit}", f"{fmt(p99)} {unit}"
    return "", ""


def ratios(row: Row, rows: Sequence[Row]) -> str:
    """Telex/peer for the row's primary metric, against each peer row of the same case."""
    mine = row.value()
    if not row.is_telex or mine is None:
        return ""
    cells = []
    for other in rows:
        if other.scenario == row.scenario and other.case == row.case and other.system in PEERS:
            theirs = other.value()
            if theirs:
                cells.append(f"{mine / theirs:.2f}x {SHORT[other.system]}")
    return ", ".join(cells)


def table(rows: Sequence[Row]) -> str:
    header = ("scenario", "case", "system", "value", "p50", "p99", "telex/peer", "note")
    lines = [header]
    for row in rows:
        if row.skipped:
            lines.append((row.scenario, row.case, row.system, "skipped", "", "", "", row.skipped))
            continue
        p50, p99 = latency_cells(row)
        value = f"{fmt(row.value())} {row.unit}"
        lines.append((row.scenario, row.case, row.system, value, p50, p99, ratios(row, rows), row.note))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    out = []
    for index, line in enumerate(lines):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])] + [line[-1]]
        out.append("  ".join(cells).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths) + "  ----")
    return "\n".join(out)


def _find(rows: Sequence[Row], scenario: str, system: str, case: str | None = None) -> list[Row]:
    return [
        r
        for r in rows
        if r.scenario == scenario
        and r.system == system
        and not r.skipped
        and (case is None or r.case == case)
    ]


def targets(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Issue 9's targets, each met or missed by how much, from this run's rows only."""
    checks: list[dict[str, Any]] = []

    def ratio_target(
        name: str,
        scenario: str,
        telex: str,
        peer: str,
        *,
        metric: str,
        goal: float,
        lower_metric: str | None = None,
        ceiling: str | None = None,
    ) -> None:
        for mine in _find(rows, scenario, telex):
            for theirs in _find(rows, scenario, peer, mine.case):
                a, b = mine.metrics.get(metric), theirs.metrics.get(metric)
                if not a or not b:
                    continue
                ratio = a / b
                entry = {
                    "target": name,
                    "case": mine.case,
                    "ratio": round(ratio, 2),
                    "goal": goal,
                    "met": ratio >= goal,
                }
                if lower_metric:
                    mine_l, theirs_l = mine.metrics.get(lower_metric), theirs.metrics.get(lower_metric)
                    if mine_l is not None and theirs_l is not None:
                        entry[f"telex_{lower_metric}"] = mine_l
                        entry[f"peer_{lower_metric}"] = theirs_l
                        entry["met"] = entry["met"] and mine_l < theirs_l
                for floor in _find(rows, scenario, ceiling, mine.case) if ceiling else ():
                    # The best ratio any layer needing as many round trips could reach here.
                    entry["ceiling"] = round(floor.metrics[metric] / b, 2)
                if not entry["met"]:
                    entry["missed_by"] = (
                        f"{ratio:.2f}x of the {goal}x goal"
                        if ratio < goal
                        else f"{lower_metric} {mine_l} not below the peer's {theirs_l}"
                    )
                checks.append(entry)

    ratio_target(
        "http-hello on Redis >= 3x Daphne stack req/s at lower p99",
        "http-hello",
        TELEX_REDIS,
        DAPHNE,
        metric="ok_requests_per_s",
        goal=3.0,
        lower_metric="p99_ms",
    )
    ratio_target(
        "django-view on Redis >= 3x Channels 1.x stack req/s at lower p99",
        "django-view",
        TELEX_REDIS,
        DAPHNE,
        metric="ok_requests_per_s",
        goal=3.0,
        lower_metric="p99_ms",
    )
    ratio_target(
        "django-view on Redis (serve + runworker + Redis) >= 0.8x gunicorn, 2 sync workers, req/s",
        "django-view",
        TELEX_REDIS,
        GUNICORN,
        metric="ok_requests_per_s",
        goal=0.8,
    )
    ratio_target(
        "ws-echo >= 3x Daphne stack msg/s", "ws-echo", TELEX_REDIS, DAPHNE, metric="msgs_per_s", goal=3.0
    )
    ratio_target(
        "ws-echo (memory://) >= 3x Daphne stack msg/s",
        "ws-echo",
        TELEX_MEMORY,
        DAPHNE,
        metric="msgs_per_s",
        goal=3.0,
    )
    ratio_target(
        "Redis layer >= 3x asgi_redis send+receive msg/s with fewer commands",
        "layer",
        TELEX_LAYER,
        ASGI_REDIS,
        metric="msgs_per_s",
        goal=3.0,
        lower_metric="commands_per_msg",
        ceiling=ROUND_TRIPS,
    )
    for system in (TELEX_MEMORY, TELEX_REDIS):
        for row in _find(rows, "ws-fanout", system, "1,000 sockets"):
            lost = row.metrics.get("lost")
            checks.append(
                {
                    "target": "ws-fanout to 1,000 sockets, none lost",
                    "system": system,
                    "lost": lost,
                    "met": lost == 0,
                }
            )
        for row in _find(rows, "ws-idle", system):
            per = row.metrics.get("kb_per_socket")
            entry = {
                "target": "ws-idle < 50 KB per socket",
                "system": system,
                "kb_per_socket": per,
                "met": per is not None and per < 50,
            }
            if not entry["met"] and per is not None:
                entry["missed_by"] = f"{per - 50:.1f} KB per socket over"
            checks.append(entry)
    return checks
