"""h2: hello world over HTTP/2 (TLS and cleartext h2c) and over HTTP/1.1 with TLS (issue 8).

h2load (Debian: ``nghttp2-client``) drives ``telex serve --routing`` on
``memory://`` with a certificate made for the run, so the rows show what TLS
and HTTP/2 framing cost on top of the same server, layer and worker.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile

from tests.support.certs import make_ca, make_server_cert

from ..harness import BenchError, Processes, Skip, child_env, free_port, wait_for_port
from ..results_model import Context, Row

NAME = "h2"
SYSTEM = "telex memory://"


def parse_h2load(output: str) -> dict:
    match = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", output)
    done = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", output
    )
    if not match or not done:
        raise BenchError(f"h2load printed no summary: {output[-500:]}")
    metrics = {
        "requests_per_s": float(match.group(1)),
        "succeeded": int(done.group(4)),
        "failed": int(done.group(5)),
    }
    latency = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", output)
    if latency:
        metrics["min"], metrics["max"], metrics["mean"] = latency.groups()
    return metrics


def run(ctx: Context) -> list[Row]:
    if shutil.which("h2load") is None:
        raise Skip("h2load not installed (Debian: apt-get install nghttp2-client)")
    requests = ctx.pick(5_000, 50_000)
    cases = [
        ("HTTP/2 over TLS, 10 conns x 10 streams", "https", ["-c10", "-m10"]),
        ("HTTP/2 cleartext (h2c), 10 conns x 10 streams", "http", ["-c10", "-m10"]),
        ("HTTP/1.1 over TLS, 10 conns", "https", ["-c10", "--h1"]),
    ]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as directory, Processes(ctx.log_dir) as procs:
        ca = make_ca()
        cert, key = make_server_cert(ca, "127.0.0.1").write(directory, "server")
        tls_port, plain_port = free_port(), free_port()
        server = procs.start(
            "telex-h2",
            [
                sys.executable,
                "-m",
                "telex",
                "serve",
                "--routing",
                "benchmarks.telex_app:routing",
                "-b",
                "127.0.0.1",
                "-p",
                str(tls_port),
                "--ssl-certfile",
                cert,
                "--ssl-keyfile",
                key,
                "-e",
                f"tcp:{plain_port}:interface=127.0.0.1",
                "-v",
                "0",
            ],
            env=child_env(),
        )
        wait_for_port(tls_port, server, 30)
        wait_for_port(plain_port, server, 30)
        for case, scheme, flags in cases:
            port = tls_port if scheme == "https" else plain_port
            proc = procs.start(
                f"h2load-{len(rows)}", ["h2load", f"-n{requests}", *flags, f"{scheme}://127.0.0.1:{port}/"]
            )
            if proc.wait(300) != 0:
                raise BenchError(f"h2load failed: {proc.tail()}")
            metrics = parse_h2load(proc.output())
            note = f"{metrics['failed']} failed" if metrics["failed"] else ""
            rows.append(Row(NAME, case, SYSTEM, "requests_per_s", "req/s", metrics, note=note))
    return rows
