"""RFC 9110 §6.6.1: an origin server with a clock sends ``Date`` — on HTTP/1.1 and HTTP/2."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.http import RAW, request
from tests.support.processes import TelexServer
from tests.support.ws import RAW_WS, ws_url


def _date_is_now(value: str) -> bool:
    return abs(email.utils.parsedate_to_datetime(value).timestamp() - time.time()) < 5


def test_responses_carry_a_date_header_on_http1_and_http2():
    with TelexServer(RAW, "--health-path", "/health") as server:
        for path in ("/hello", "/health", "/missing%00"):
            headers = request(server, "GET", path)[1]
            assert _date_is_now(headers["Date"]), (path, headers)
        with httpx.Client(http1=False, http2=True) as http:
            response = http.get(f"{server.url}/hello")
        assert response.http_version == "HTTP/2" and _date_is_now(response.headers["date"])
        assert len(response.headers.get_list("date")) == 1


def test_websocket_refusals_carry_a_date_header():
    with TelexServer(RAW_WS) as server:
        with pytest.raises(InvalidStatus) as refused:
            with connect(ws_url(server, "/reject"), open_timeout=10):
                pass
    assert refused.value.response.status_code == 403
    assert _date_is_now(refused.value.response.headers["Date"])
