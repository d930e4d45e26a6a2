"""http-hello: requests/s and latency through server + layer + one worker (issues 3, 9).

Closed-loop load from wrk at fixed concurrencies, then open-loop load at a
fixed request rate from ``clients/http_rate.py``.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Sequence

from ..harness import BenchError, Processes, Skip, run_json
from ..results_model import DAPHNE, Context, Row
from ..systems import HTTP_HELLO_SYSTEMS, running

NAME = "http-hello"
POLL_NOTE = "Daphne polls its reply channel every 50 ms when idle"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> dict:
    """Requests/s, latency percentiles and error counts from ``wrk --latency``."""
    metrics: dict = {}
    for percent, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.M):
        metrics[f"p{percent}_ms"] = _ms(value)
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not match:
        raise BenchError(f"wrk printed no Requests/sec: {output[-500:]}")
    metrics["requests_per_s"] = float(match.group(1))
    match = re.search(r"(\d+) requests in", output)
    metrics["requests"] = int(match.group(1)) if match else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    metrics["socket_errors"] = sum(map(int, errors.groups())) if errors else 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    metrics["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    # wrk's Requests/sec counts error replies too (Daphne answers 503 when
    # http.request is at capacity), so the headline figure is successes only.
    good = max(0, metrics["requests"] - metrics["non_2xx"])
    metrics["ok_requests_per_s"] = metrics["requests_per_s"] * good / metrics["requests"] if good else 0.0
    return metrics


def wrk(
    ctx: Context,
    procs: Processes,
    port: int,
    connections: int,
    seconds: int,
    *,
    headers: Sequence[str] = (),
    name: str = "wrk",
) -> dict:
    """``wrk`` on ``/``; ``headers`` are "Name: value" lines sent with every request."""
    proc = procs.start(
        f"{name}-c{connections}",
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "5s",
            *(arg for header in headers for arg in ("-H", header)),
            f"http://127.0.0.1:{port}/",
        ],
    )
    status = proc.wait(seconds + 30)
    if status != 0:
        raise BenchError(f"wrk exited with status {status}: {proc.tail()}")
    return parse_wrk(proc.output())


def run(ctx: Context) -> list[Row]:
    if shutil.which("wrk") is None:
        raise Skip("wrk not installed (Debian: apt-get install wrk)")
    concurrencies = ctx.pick([1, 64], [1, 16, 64, 256])
    # 3 s per run under --quick: five systems x three runs must leave the later
    # scenarios room in the two-minute budget.
    seconds = ctx.pick(3, 10)
    rate = 200
    rows: list[Row] = []
    with Processes(ctx.log_dir) as procs:
        for system in HTTP_HELLO_SYSTEMS:
            cases = [f"wrk c={c}" for c in concurrencies] + [f"{rate} req/s fixed"]
            try:
                with running(system, ctx, procs) as server:
                    for connections in concurrencies:
                        metrics = wrk(ctx, procs, server.port, connections, seconds)
                        note = server.note
                        if system == DAPHNE and connections <= 16:
                            note = f"{POLL_NOTE}; {note}"
                        if metrics["non_2xx"] or metrics["socket_errors"]:
                            note = (
                                f"{metrics['non_2xx']:,} of {metrics['requests']:,} replies not 2xx, "
                                f"{metrics['socket_errors']} socket errors; {note}"
                            )
                        rows.append(
                            Row(
                                NAME,
                                f"wrk c={connections}",
                                system,
                                "ok_requests_per_s",
                                "req/s",
                                metrics,
                                note=note,
                            )
                        )
                    metrics = run_json(
                        procs,
                        "http-rate",
                        [
                            sys.executable,
                            "-m",
                            "benchmarks.clients.http_rate",
                            "--port",
                            str(server.port),
                            "--rate",
                            str(rate),
                            "--seconds",
                            str(seconds),
                        ],
                        timeout=seconds + 60,
                    )
                    note = f"{POLL_NOTE}; {server.note}" if system == DAPHNE else server.note
                    if metrics["errors"]:
                        note = f"{metrics['errors']} of {metrics['requests']:,} failed; {note}"
                    rows.append(
                        Row(
                            NAME,
                            f"{rate} req/s fixed",
                            system,
                            "p99_ms",
                            "ms",
                            metrics,
                            higher_is_better=False,
                            note=note,
                        )
                    )
            except (Skip, BenchError) as exc:
                reason = str(exc) if isinstance(exc, Skip) else f"error: {exc}"
                done = {row.case for row in rows if row.system == system}
                rows.extend(Row(NAME, case, system, skipped=reason) for case in cases if case not in done)
    return rows
