"""The access log as log tools read it, over real sockets.

Every kind of request a server answers — HTTP/1.1, HTTP/2 (h2c), WebSocket
(opened and closed, refused), health, metrics, and clients sending quotes,
backslashes, control bytes and bytes >= 0x80 — is logged, and Debian's
``goaccess --log-format=COMBINED`` must read every line.
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from telex.server.accesslog import escape
from tests.support.browser import in_ci
from tests.support.http import request
from tests.support.processes import TelexServer
from tests.support.waiting import wait_until
from tests.support.ws import RAW_WS, RawClient, frame, handshake_request, ws_url

HOSTILE_AGENT = 'evil" 200 1 "-" "forged\x1b[2J\\'
#: Autobahn answers a handshake with control bytes in it 400 (a line of its own, below).
HOSTILE_WS_AGENT = 'evil" 200 1 "-" "forged\\'


def raw_request(server, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def lines_of(log, count: int) -> list[str]:
    assert wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= count, timeout=10)
    return log.read_text().splitlines()


def test_escape_is_apaches_and_nginxs():
    assert escape(b"/plain?x=1") == "/plain?x=1"
    assert escape(b'a"b\\c') == 'a\\"b\\\\c'
    assert escape(b"\x1b[31m\x00\x7f\n") == "\\x1B[31m\\x00\\x7F\\x0A"
    assert escape("é".encode()) == "\\xC3\\xA9"


def test_every_kind_of_request_is_a_line_goaccess_reads(tmp_path):
    log = tmp_path / "access.log"
    flags = ("--access-log", str(log), "--health-path", "/health", "--metrics-path", "/metrics")
    with TelexServer(RAW_WS, *flags) as server:
        status, _, health = request(server, "GET", "/health")
        assert status == 200
        _, _, metrics = request(server, "GET", "/metrics")
        request(server, "GET", "/events", headers={"User-Agent": HOSTILE_AGENT, "Referer": 'http://r/"\\'})
        raw_request(
            server,
            b"GET /del\x7f/%22 HTTP/1.1\r\nHost: x\r\nUser-Agent: \xff\xfe\x07\r\n"
            b"Referer: http://x/\xe9\r\nConnection: close\r\n\r\n",
        )
        with httpx.Client(http1=False, http2=True) as http:
            assert http.get(f"{server.url}/events?h2").http_version == "HTTP/2"
        client = RawClient(server.port)  # the websockets client refuses to send such a header
        client.send(handshake_request("/echo", (("User-Agent", HOSTILE_WS_AGENT),), server.port))
        assert client.read_head().startswith(b"HTTP/1.1 101")
        client.send(frame(b"hello"))
        assert client.read_message() == b"hello"
        client.send(frame(struct.pack("!H", 1000), opcode=8))
        assert client.read_close_code() == 1000
        client.close()
        with pytest.raises(InvalidStatus):
            with connect(ws_url(server, "/reject"), open_timeout=10):
                pass
        client = RawClient(server.port)
        client.send(handshake_request("/ws-hostile", (("User-Agent", HOSTILE_AGENT),), server.port))
        assert client.read_head().startswith(b"HTTP/1.1 400")
        client.close()
        lines = lines_of(log, 8)
    assert len(lines) == 8, lines
    by_path = {line.split('"')[1].split(" ")[1]: line for line in lines}
    assert f'"GET /health HTTP/1.1" 200 {len(health)} ' in by_path["/health"]
    assert f'"GET /metrics HTTP/1.1" 200 {len(metrics)} ' in by_path["/metrics"]
    assert '"evil\\" 200 1 \\"-\\" \\"forged\\x1B[2J\\\\"' in by_path["/events"]
    assert '"evil\\" 200 1 \\"-\\" \\"forged\\\\"' in by_path["/echo"]
    refused = by_path["/ws-hostile"]
    assert '"GET /ws-hostile HTTP/1.1" 400 - "-" "evil\\" 200 1 \\"-\\" \\"forged\\x1B[2J' in refused
    # Twisted answers 400 itself (unlogged) to other control and non-ASCII bytes in the target.
    assert '"GET /del\\x7F/%22 HTTP/1.1" 200 ' in by_path["/del\\x7F/%22"]
    assert '"http://x/\\xE9" "\\xFF\\xFE\\x07"' in by_path["/del\\x7F/%22"]
    assert by_path["/events?h2"].split('"')[1:3] == ["GET /events?h2 HTTP/2", " 200 2 "]
    # A WebSocket is one line when it ends: its request line, 101, close code, duration.
    echo = by_path["/echo"]
    assert '"GET /echo HTTP/1.1" 101 - "-" ' in echo
    close_code, duration = echo.rsplit(" ", 2)[1:]
    assert close_code == "1000" and float(duration) >= 0
    assert '"GET /reject HTTP/1.1" 403 - ' in by_path["/reject"]
    assert all("\x1b" not in line for line in lines)

    goaccess = shutil.which("goaccess")
    if goaccess is None:
        if in_ci():
            pytest.fail("goaccess is not installed; .ci/run installs it")
        pytest.skip("goaccess is not installed (apt-get install goaccess; .ci/run installs it)")
    report = tmp_path / "report.json"
    subprocess.run(
        [goaccess, str(log), "--log-format=COMBINED", "--no-global-config", "-o", str(report)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    general = json.loads(report.read_text())["general"]
    assert general["failed_requests"] == 0 and general["valid_requests"] == 8, general


def test_the_json_access_log_escapes_and_gives_the_close_code(tmp_path):
    log = tmp_path / "access.jsonl"
    with TelexServer(RAW_WS, "--access-log", str(log), "--access-log-format", "json") as server:
        request(server, "GET", "/events", headers={"User-Agent": HOSTILE_AGENT})
        with connect(ws_url(server, "/echo"), open_timeout=10) as ws:
            ws.close(4001)
        lines = lines_of(log, 2)
    assert "\x1b" not in log.read_text()
    entries = [json.loads(line) for line in lines]
    http_entry = next(entry for entry in entries if entry["path"] == "/events")
    assert http_entry["user_agent"] == HOSTILE_AGENT and http_entry["close_code"] is None
    ws_entry = next(entry for entry in entries if entry["path"] == "/echo")
    assert ws_entry["status"] == 101 and ws_entry["close_code"] == 4001 and ws_entry["method"] == "GET"
