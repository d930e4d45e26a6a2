"""The twisted.web details Telex's HTTP adapter relies on, pinned.

If a Twisted upgrade changes one of these, this file fails first and names
what moved; ``docs/http.md`` lists the same details and why each is needed.
"""

import inspect

from twisted.web import _http2, http


def test_http_channel_calls_got_length_after_all_headers():
    source = inspect.getsource(http.HTTPChannel.allHeadersReceived)
    assert "gotLength" in source


def test_http_channel_keeps_the_request_line_until_the_body_is_complete():
    # AsgiRequest._head_complete reads these while a streamed body arrives.
    line_source = inspect.getsource(http.HTTPChannel.lineReceived)
    assert "self._command = command" in line_source
    assert "self._path = request" in line_source
    assert "self._version = version" in line_source
    done_source = inspect.getsource(http.HTTPChannel.allContentReceived)
    assert "del self._command, self._path, self._version" in done_source
    assert "req.requestReceived(command, path, version)" in done_source


def test_http_channel_feeds_body_chunks_to_handle_content_chunk():
    source = inspect.getsource(http.HTTPChannel._maybeChooseTransferDecoder)
    assert "handleContentChunk" in source


def test_http_channel_exposes_its_network_producer_for_read_pausing():
    source = inspect.getsource(http.HTTPChannel.connectionMade)
    assert "self._networkProducer" in source


def test_http_channel_chooses_the_body_framing_per_header_in_one_method():
    # TelexHTTPChannel overrides it for RFC 9112's transfer-coding rules (docs/http.md).
    header_source = inspect.getsource(http.HTTPChannel.headerReceived)
    assert "self._maybeChooseTransferDecoder(header, data)" in header_source
    assert "_nameEncoder.encode(header)" in header_source and "data.strip(" in header_source
    source = inspect.getsource(http.HTTPChannel._maybeChooseTransferDecoder)
    assert 'header == b"Content-Length"' in source and 'header == b"Transfer-Encoding"' in source
    assert "length = None" in source and "self._transferDecoder = newTransferDecoder" in source


def test_http_channel_reads_no_body_when_the_length_is_zero():
    # A refused framing sets length 0: lineReceived then ends the request, reading nothing.
    source = inspect.getsource(http.HTTPChannel.lineReceived)
    assert "self.allHeadersReceived()\n            if self.length == 0:" in source


def test_twisted_h2_has_a_reset_flood_bucket_telex_spends_for_malformed_requests():
    source = inspect.getsource(_http2.H2Connection._requestAborted)
    for name in (
        "_resetTokens",
        "_resetTokenTimestamp",
        "_resetTokenBurst",
        "_resetTokenRate",
        "_requestDone",
    ):
        assert name in source
    assert "self._reactor.seconds()" in source


def test_h2_validates_a_request_after_its_stream_accepted_the_headers():
    # _H2State resets only a stream whose headers were decoded and accepted (docs/tls-http2.md).
    import h2.connection
    import h2.stream

    connection = inspect.getsource(h2.connection.H2Connection._receive_headers_frame)
    assert connection.index("_decode_headers") < connection.index("stream.receive_headers")
    stream = inspect.getsource(h2.stream.H2Stream.receive_headers)
    assert stream.index("self.state_machine.process_input(input_)") < stream.index(
        "_process_received_headers"
    )
    machine = inspect.getsource(h2.stream.H2StreamStateMachine.process_input)
    assert "self.state = StreamState.CLOSED" in machine


def test_http_channel_rejects_a_second_length_header():
    # Content-Length together with Transfer-Encoding is refused (no smuggling).
    source = inspect.getsource(http.HTTPChannel._maybeChooseTransferDecoder)
    assert "if self._transferDecoder is not None" in source


def test_the_generic_protocol_switches_to_http2_and_shares_the_request_factory():
    assert hasattr(http, "_GenericHTTPChannelProtocol")
    source = inspect.getsource(http._GenericHTTPChannelProtocol)
    assert "H2Connection" in source and "requestFactory" in source


def test_h2_stream_calls_the_same_request_hooks_and_can_pause():
    source = inspect.getsource(_http2.H2Stream)
    for name in ("gotLength", "handleContentChunk", "requestReceived"):
        assert name in source
    assert callable(_http2.H2Stream.pauseProducing) and callable(_http2.H2Stream.resumeProducing)
    assert "self.command" in source and "self.path" in source


def test_h2_connection_sends_from_a_loop_telex_can_schedule():
    # TelexH2Connection blocks streams without a send window before each round
    # and wakes the loop when a window opens (docs/tls-http2.md, Conformance).
    source = inspect.getsource(_http2.H2Connection._sendPrioritisedData)
    assert "self._reactor.callLater(0, self._sendPrioritisedData)" in source
    assert "self._sendingDeferred.addCallback(self._sendPrioritisedData)" in source
    assert "_END_STREAM_SENTINEL" in source and "self._outboundStreamQueues[stream]" in source


def test_h2_connection_calls_connection_lost_itself_when_it_closes():
    # TelexH2Connection unregisters from the transport there, or TLS never closes.
    for method in (_http2.H2Connection._terminate, _http2.H2Connection.dataReceived):
        source = inspect.getsource(method)
        assert "self.transport.loseConnection()" in source and "self.connectionLost(" in source


def test_h2_library_parts_telex_adjusts_its_error_codes_in():
    import h2.connection
    import h2.frame_buffer

    assert "self._data" in inspect.getsource(h2.frame_buffer.FrameBuffer.__next__)
    assert "self.incoming_buffer" in inspect.getsource(h2.connection.H2Connection.receive_data)
    assert "_decode_headers" in inspect.getsource(h2.connection.H2Connection._receive_headers_frame)
    assert "raise ProtocolError(msg) from e" in inspect.getsource(h2.connection._decode_headers)


def test_h2_parts_telex_checks_request_bodies_against_content_length_with():
    import h2.connection
    import h2.events
    import h2.stream
    from twisted.web import _http2

    # A body at odds with content-length: refused after the connection's window counted it.
    data_frame = inspect.getsource(h2.connection.H2Connection._receive_data_frame)
    assert data_frame.index("window_consumed") < data_frame.index("stream.receive_data")
    assert "InvalidBodyLengthError" in inspect.getsource(h2.stream.H2Stream._track_content_length)
    # The counts Telex compares when HEADERS or trailers end a stream.
    stream = inspect.getsource(h2.stream.H2Stream.__init__)
    assert "self._expected_content_length" in stream and "self._actual_content_length" in stream
    assert h2.events.StreamReset(stream_id=1, error_code=1, remote_reset=False).stream_id == 1
    # What a paused H2Stream holds unacknowledged, given back on a reset.
    assert "self._inboundDataBuffer.append((data, flowControlledLength))" in inspect.getsource(
        _http2.H2Stream.receiveDataChunk
    )


def test_the_tcp_transport_parts_write_through_reads():
    from autobahn.websocket.protocol import WebSocketProtocol
    from twisted.internet import abstract, tcp

    # ``flow.write_through`` sends at once only when Twisted holds nothing for the socket.
    write = inspect.getsource(abstract.FileDescriptor.write)
    assert "self._tempDataBuffer.append(data)" in write and "self._tempDataLen += len(data)" in write
    do_write = inspect.getsource(abstract.FileDescriptor.doWrite)
    assert "self.offset" in do_write and "self.dataBuffer" in do_write
    assert hasattr(tcp.Server, "TLS")
    # ``AsgiWebSocketProtocol.sendData`` keeps Autobahn's queue and traffic counts.
    send_data = inspect.getsource(WebSocketProtocol.sendData)
    assert "self.send_queue" in send_data and "self.trafficStats" in send_data
