"""``python -m benchmarks [--quick] [--json PATH] [SCENARIO...]``."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import traceback
from pathlib import Path

from . import envs, report, scenarios
from .harness import RESULTS_DIR, BenchError, Skip, machine_info, make_log_dir, raise_nofile
from .results_model import Context, Row

# Wall-clock budgets from issue 9 (2 cores): --quick < 2 min, full < 20 min.
# Building the peer virtualenvs happens once, before the clock starts.
QUICK_BUDGET = 110.0
FULL_BUDGET = 1150.0


def main(argv: list[str] | None = None) -> int:
    available = scenarios.load()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (< 2 minutes in all)")
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="where to write the JSON result (default: benchmarks/results/run-TIMESTAMP.json)",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=os.environ.get("TELEX_BENCH_CACHE"),
        help="where peer virtualenvs live (default: $TELEX_BENCH_CACHE or ~/.cache/telex-bench)",
    )
    parser.add_argument(
        "scenario",
        nargs="*",
        metavar="SCENARIO",
        help=f"scenarios to run (default: all): {', '.join(available)}",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenario if name not in available]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)} (known: {', '.join(available)})")
    chosen = args.scenario or list(available)

    raise_nofile()
    cache_dir = Path(args.cache_dir or Path.home() / ".cache" / "telex-bench").expanduser()
    log_dir = make_log_dir()
    ctx = Context(quick=args.quick, log_dir=log_dir, cache_dir=cache_dir, deadline=0.0)
    started = datetime.datetime.now(datetime.UTC)
    print(f"machine: {machine_info()['cpu_model']}, {os.cpu_count()} cores; logs in {log_dir}", flush=True)

    ctx.info["peers"] = envs.prepare(ctx, chosen)
    ctx.deadline = time.monotonic() + (QUICK_BUDGET if args.quick else FULL_BUDGET)

    rows: list[Row] = []
    for name in chosen:
        clock = time.monotonic()
        print(f"== {name}", flush=True)
        if ctx.remaining() <= 5:
            rows.append(Row(name, "-", "-", skipped="out of time budget"))
            continue
        try:
            new_rows = available[name].run(ctx)
        except Skip as exc:
            new_rows = [Row(name, "-", "-", skipped=str(exc))]
        except (BenchError, OSError, ValueError, KeyError) as exc:
            traceback.print_exc(file=sys.stderr)
            new_rows = [Row(name, "-", "-", skipped=f"error: {exc}")]
        for row in new_rows:
            print(
                "   ",
                row.system,
                "|",
                row.case,
                "|",
                row.skipped or f"{report.fmt(row.value())} {row.unit}",
                flush=True,
            )
        rows.extend(new_rows)
        print(f"   ({time.monotonic() - clock:.1f} s)", flush=True)

    print()
    print(report.table(rows))
    checks = report.targets(rows)
    for check in checks:
        print(("met    " if check["met"] else "MISSED ") + json.dumps(check))

    document = {
        "command": " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]),
        "started": started.isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine_info(),
        "versions": envs.telex_versions(),
        "peers": ctx.info["peers"],
        "rows": [row.to_json() for row in rows],
        "targets": checks,
        "logs": str(log_dir),
    }
    path = Path(args.json) if args.json else RESULTS_DIR / f"run-{started:%Y%m%dT%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nJSON written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
