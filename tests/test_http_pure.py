"""The HTTP adapter's pure parts, driven without sockets: error responses,
peer addresses, the request's phases (``http_state``) and flow control."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.web import http
from twisted.web.http_headers import Headers

from telex.protocols import flow, http_wire, peers
from telex.protocols import http_messages as msgs
from telex.protocols.http_state import ENDED, TRANSITIONS, Event, Phase, PhaseError, RequestState
from telex.protocols.proxy import TrustedProxies

# -- raw error responses -------------------------------------------------------------------


def test_raw_error_response_is_a_whole_closing_response_with_a_small_page():
    response = msgs.raw_error_response(503, "Too many connections; try again shortly.")
    head, body = response.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 503 Service Unavailable"
    assert b"connection: close" in lines
    assert b"content-type: text/html; charset=utf-8" in lines
    assert f"content-length: {len(body)}".encode() in lines
    assert b"try again shortly" in body


def test_raw_error_response_without_detail_has_no_body_and_carries_a_date():
    head, _, body = msgs.raw_error_response(408).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[:3] == [b"HTTP/1.1 408 Request Timeout", b"connection: close", b"content-length: 0"]
    assert lines[3].startswith(b"date: ") and lines[3].endswith(b" GMT") and body == b""


# -- the request's phases ----------------------------------------------------------------


def _through(*events: Event) -> RequestState:
    state = RequestState()
    for event in events:
        state.handle(event)
    return state


def test_an_application_request_goes_head_gathering_waiting_responding_done():
    state = RequestState()
    assert state.handle(Event.HEAD_READ) is Phase.HEAD
    state.handle(Event.REQUEST_SENT)
    assert state.phase is Phase.WAITING and state.forwarded and state.in_progress
    state.handle(Event.RESPONSE_STARTED)
    state.handle(Event.RESPONSE_ENDED)
    assert state.phase is Phase.DONE and state.ended and not state.owes_disconnect


def test_the_request_goes_to_the_application_at_most_once_and_before_any_response():
    for events in (
        (Event.REQUEST_SENT,),  # the head is not read yet
        (Event.HEAD_READ, Event.REQUEST_SENT, Event.REQUEST_SENT),
        (Event.HEAD_READ, Event.RESPONSE_STARTED, Event.REQUEST_SENT),
    ):
        with pytest.raises(PhaseError):
            _through(*events)


def test_a_response_starts_once_and_ends_once():
    state = _through(Event.HEAD_READ, Event.REQUEST_SENT, Event.RESPONSE_STARTED)
    with pytest.raises(PhaseError):
        state.handle(Event.RESPONSE_STARTED)
    state.handle(Event.RESPONSE_ENDED)
    with pytest.raises(PhaseError, match="'response ended' is not allowed in phase 'done'"):
        state.handle(Event.RESPONSE_ENDED)


def test_the_server_may_answer_itself_before_anything_is_forwarded():
    state = _through(Event.HEAD_READ, Event.RESPONSE_STARTED)  # health, metrics, 413, 400
    assert state.in_progress and not state.forwarded
    state.handle(Event.CONNECTION_LOST)
    assert not state.owes_disconnect


def test_endings_are_final_but_a_connection_can_still_be_lost():
    for phase in ENDED:
        allowed = set(TRANSITIONS[phase])
        assert allowed == {Event.CONNECTION_LOST}, phase


def test_a_lost_connection_owes_the_application_a_disconnect_unless_the_response_finished():
    aborted = _through(Event.HEAD_READ, Event.REQUEST_SENT, Event.RESPONSE_STARTED, Event.ABORTED)
    assert aborted.owes_disconnect
    waiting = _through(Event.HEAD_READ, Event.REQUEST_SENT)
    assert waiting.owes_disconnect
    waiting.handle(Event.CONNECTION_LOST)
    assert waiting.phase is Phase.LOST and not waiting.owes_disconnect  # owed once, at the loss


def test_an_upgraded_request_is_over_for_http():
    state = _through(Event.HEAD_READ, Event.UPGRADED)
    assert state.ended and not state.in_progress


def test_body_complete_is_a_fact_beside_the_phase():
    state = RequestState()
    assert not state.body_complete
    state.body_complete = True
    state.handle(Event.HEAD_READ)
    assert state.body_complete and state.phase is Phase.GATHERING


# -- the wires -----------------------------------------------------------------------------


def test_each_channel_gets_its_wire_once_and_only_http1_can_upgrade():
    assert http_wire.wire_for(http.HTTPChannel()) is http_wire.HTTP1
    assert http_wire.wire_for(object()) is http_wire.HTTP2  # an H2Stream
    assert http_wire.HTTP1.can_upgrade and not http_wire.HTTP2.can_upgrade
    assert not http_wire.HTTP1.head_waits(0) and http_wire.HTTP1.head_waits(None)
    assert http_wire.HTTP2.head_waits(0)


def test_http2_drops_connection_specific_headers_and_never_says_close():
    assert b"connection" in http_wire.HTTP2.forbidden_headers
    assert b"transfer-encoding" in http_wire.HTTP2.forbidden_headers
    assert not http_wire.HTTP1.forbidden_headers
    channel, headers = SimpleNamespace(persistent=True), Headers()
    http_wire.HTTP2.close_after(channel, headers)
    assert channel.persistent and not headers.hasHeader(b"connection")
    http_wire.HTTP1.close_after(channel, headers)
    assert not channel.persistent and headers.getRawHeaders(b"connection") == [b"close"]


# -- peer addresses ------------------------------------------------------------------------


def _request(secure: bool = False, host: str = "10.0.0.7") -> SimpleNamespace:
    return SimpleNamespace(getClientAddress=lambda: IPv4Address("TCP", host, 5000), isSecure=lambda: secure)


def _context(proxy_headers: bool, trusted: list[str]) -> SimpleNamespace:
    return SimpleNamespace(
        settings=SimpleNamespace(proxy_headers=proxy_headers), trusted_proxies=TrustedProxies(trusted)
    )


def test_address_is_host_and_port_or_none_for_unix_sockets():
    assert peers.address(IPv4Address("TCP", "127.0.0.1", 80)) == ["127.0.0.1", 80]
    assert peers.address(UNIXAddress(b"/run/telex.sock")) is None


def test_client_and_scheme_come_from_the_socket_unless_a_trusted_proxy_says_otherwise():
    forwarded = [[b"x-forwarded-for", b"203.0.113.9"], [b"x-forwarded-proto", b"https"]]
    untrusted = _context(True, ["127.0.0.1"])
    assert peers.client_and_scheme(untrusted, _request(), forwarded) == (["10.0.0.7", 5000], "http")
    off = _context(False, ["*"])
    assert peers.client_and_scheme(off, _request(secure=True), forwarded, websocket=True) == (
        ["10.0.0.7", 5000],
        "wss",
    )
    trusted = _context(True, ["10.0.0.0/8"])
    assert peers.client_and_scheme(trusted, _request(), forwarded) == (["203.0.113.9", 0], "https")
    assert peers.client_and_scheme(trusted, _request(), forwarded, websocket=True)[1] == "wss"


# -- flow control: in-order sending with backpressure ----------------------------------------


class Full(Exception):
    pass


class FakeSender:
    """Records sends; each answers when the test says (or at once with ``auto``)."""

    def __init__(self, auto: bool = False) -> None:
        self.sent: list[tuple[str, dict, Deferred]] = []
        self.auto = auto

    def send(self, channel: str, message: dict) -> Deferred:
        deferred: Deferred = succeed(None) if self.auto else Deferred()
        self.sent.append((channel, message, deferred))
        return deferred


def _in_order(sender, clock, events, give_up_after=None, pause_messages=2, pause_bytes=100):
    return flow.InOrderSender(
        sender,
        Full,
        pause=lambda: events.append("pause"),
        resume=lambda: events.append("resume"),
        on_failure=lambda failure: events.append(("failed", failure.type)),
        on_drained=lambda: events.append("drained"),
        pause_messages=pause_messages,
        pause_bytes=pause_bytes,
        give_up_after=give_up_after,
        clock=clock,
    )


def test_messages_go_one_at_a_time_in_order_and_reading_pauses_until_half_have_gone():
    sender, clock, events = FakeSender(), Clock(), []
    queue = _in_order(sender, clock, events)
    for number in range(4):
        queue.push("c", {"n": number}, 1)
    assert [message["n"] for _, message, _ in sender.sent] == [0]
    assert events == ["pause"]  # more than two waiting
    for expected in range(1, 4):
        sender.sent[-1][2].callback(None)
        assert sender.sent[-1][1]["n"] == expected
    assert events == ["pause", "resume"]  # one left: at or below half of two
    sender.sent[-1][2].callback(None)
    assert events[-1] == "drained" and queue.idle and queue.delivered == 4


def test_channel_full_is_retried_on_the_one_schedule_until_the_budget_is_spent():
    sender, clock, events = FakeSender(), Clock(), []
    queue = _in_order(sender, clock, events, give_up_after=1.0)
    queue.push("c", {}, 1)
    waited = 0.0
    while not events:
        sender.sent[-1][2].errback(Full())
        if events:
            break
        delay = flow.RETRY_DELAYS[min(len(sender.sent) - 1, len(flow.RETRY_DELAYS) - 1)]
        clock.advance(delay)
        waited += delay
    assert events == [("failed", Full)]
    assert 1.0 <= waited < 1.1
    assert queue.stopped and queue.idle


def test_without_a_budget_channel_full_is_retried_while_the_owner_lives():
    sender, clock, events = FakeSender(), Clock(), []
    queue = _in_order(sender, clock, events)
    queue.push("c", {}, 1)
    delays = []
    for _ in range(200):
        sender.sent[-1][2].errback(Full())
        (retry,) = clock.getDelayedCalls()
        delays.append(retry.getTime() - clock.seconds())
        clock.advance(delays[-1])
    assert events == [] and len(sender.sent) == 201
    # After a second of refusals, the retries slow down to SLOW_RETRY_DELAY.
    assert delays[-1] == pytest.approx(flow.SLOW_RETRY_DELAY)
    assert max(delays[:20]) == pytest.approx(flow.RETRY_DELAYS[-1])
    queue.stop()
    sender.sent[-1][2].errback(Full())
    assert clock.getDelayedCalls() == []


def test_other_failures_end_the_sending_at_once():
    sender, clock, events = FakeSender(), Clock(), []
    queue = _in_order(sender, clock, events)
    queue.push("c", {}, 1)
    queue.push("c", {}, 1)
    sender.sent[0][2].errback(ValueError("layer down"))
    assert events == [("failed", ValueError)] and queue.idle
    queue.push("c", {}, 1)
    assert len(sender.sent) == 1


def test_thousands_of_waiting_messages_sent_synchronously_do_not_recurse():
    sender, clock, events = FakeSender(), Clock(), []
    queue = _in_order(sender, clock, events, pause_messages=10_000, pause_bytes=10**9)
    queue.push("c", {}, 1)
    sender.auto = True
    for _ in range(5000):
        queue.push("c", {}, 1)
    sender.sent[0][2].callback(None)
    assert queue.delivered == 5001 and events == ["drained"]


# -- flow control: output held for a slow client ---------------------------------------------


def _held(clock, events, grace=None):
    return flow.HeldOutput(
        events.append,
        len,
        limit=10,
        grace=grace,
        on_slow=lambda held: events.append(("slow", held)),
        on_warn=lambda held: events.append(("warn", held)),
        clock=clock,
    )


def test_output_is_held_in_order_while_the_transport_is_full():
    clock, events = Clock(), []
    output = _held(clock, events)
    output.offer(b"a")
    output.pauseProducing()
    output.offer(b"b")
    output.offer(b"c")
    assert events == [b"a"] and output.held_bytes == 2
    output.resumeProducing()
    output.offer(b"d")
    assert events == [b"a", b"b", b"c", b"d"] and output.held_bytes == 0


def test_a_slow_client_without_grace_ends_as_soon_as_it_is_over_the_limit():
    clock, events = Clock(), []
    output = _held(clock, events)
    output.pauseProducing()
    output.offer(b"x" * 10)
    assert events == []
    output.offer(b"y")
    assert events == [("slow", 11)] and output.held_bytes == 0


def test_a_slow_client_with_grace_is_warned_then_ended_unless_it_catches_up():
    clock, events = Clock(), []
    output = _held(clock, events, grace=30)
    output.pauseProducing()
    output.offer(b"x" * 11)
    assert events == [("warn", 11)]
    clock.advance(29)
    output.resumeProducing()  # caught up: the timer is off
    clock.advance(5)
    assert events == [("warn", 11), b"x" * 11]
    output.pauseProducing()
    output.offer(b"y" * 11)
    clock.advance(30)
    assert events[-1] == ("slow", 11)
    output.offer(b"z" * 41)  # four times the limit: at once
    assert events[-1] == ("slow", 41)
