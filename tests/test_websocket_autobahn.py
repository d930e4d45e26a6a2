"""Autobahn|Testsuite conformance cases against an echo deployment (slow).

``kosoku`` (PyPI) runs the Autobahn case files from Python 3. It is
installed on first use into a cache directory outside the repository
(``$TELEX_TEST_CACHE`` or ``~/.cache/telex-tests``), never into the
environment under test. The echo is ``tests.apps.raw_ws`` on ``/autobahn``,
so every frame goes server → memory layer → consumer → server.

Cases 9.* (multi-megabyte throughput) are excluded; of the
permessage-deflate cases 12.*/13.* only 12.1.* and 13.1.* run (about 45 s:
each case is a thousand messages through the layer); docs/websocket.md
records a full run.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys

import pytest

from tests.support.processes import TelexServer
from tests.support.ws import RAW_WS

KOSOKU = "kosoku==0.1.0"
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


#: Runs in its own interpreter: kosoku executes the Autobahn case files with
#: an ``autobahn`` package of its own, which must not meet the one Telex uses.
RUNNER = """
import asyncio, json, os, sys
import kosoku
url, cases, exclude = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
async def run():
    try:
        return await kosoku.run_fuzzingclient(url, cases=cases, exclude_cases=exclude, concurrency=2)
    except kosoku.FailureError as failure:
        return failure.results
results = asyncio.run(run())
print(json.dumps([[r.case_id, r.behavior.value, r.behavior_close.value] for r in results]), flush=True)
# kosoku's process sometimes aborts (SIGABRT, no message) while the interpreter
# tears down, after the results are out; skip the teardown.
os._exit(0)
"""


@pytest.fixture(scope="module")
def kosoku_path():
    cache = os.environ.get("TELEX_TEST_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "telex-tests"
    )
    target = os.path.join(cache, "kosoku-0.1.0")
    if not os.path.isdir(os.path.join(target, "kosoku")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--target",
                target,
                KOSOKU,
            ],
            check=True,
            timeout=300,
        )
    return target


def run_cases(kosoku_path: str, port: int, cases: list[str] | None, exclude: list[str]) -> list:
    finished = subprocess.run(
        [
            sys.executable,
            "-c",
            RUNNER,
            f"ws://127.0.0.1:{port}/autobahn",
            json.dumps(cases),
            json.dumps(exclude),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": kosoku_path},
        timeout=600,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


def assert_no_failures(results: list) -> None:
    assert results, "no Autobahn case ran"
    failed = [r for r in results if r[1] not in PASSING or r[2] not in ("OK", "INFORMATIONAL")]
    summary = collections.Counter(r[1] for r in results)
    assert not failed, f"Autobahn cases failed: {failed} (summary {dict(summary)})"


@pytest.mark.slow
def test_autobahn_cases_pass_without_compression(kosoku_path):
    with TelexServer(RAW_WS) as server:
        assert_no_failures(run_cases(kosoku_path, server.port, None, ["9.*", "12.*", "13.*"]))


@pytest.mark.slow
def test_autobahn_permessage_deflate_cases_pass(kosoku_path):
    with TelexServer(RAW_WS, "--websocket-compression") as server:
        assert_no_failures(run_cases(kosoku_path, server.port, ["12.1.*", "13.1.*"], []))
