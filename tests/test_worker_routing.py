"""Routing rules (S7): one test per rule, on the compiled Router."""

from __future__ import annotations

import re

import pytest

from telex.routing import Router, RoutingError, include, route, route_class
from telex.worker import WebsocketConsumer


def first(message):
    return "first"


def second(message):
    return "second"


def matched(router, channel, **content):
    found = router.match(channel, content)
    return None if found is None else (found[0], found[1])


def test_a_route_without_filters_matches_every_message_on_its_channel():
    router = Router([route("http.request", first)])
    assert matched(router, "http.request", path="/anything") == (first, {})
    assert matched(router, "websocket.receive", path="/") is None


def test_filters_are_regular_expressions_on_message_keys():
    router = Router([route("http.request", first, path=r"^/poll/$", method=r"^POST$")])
    assert matched(router, "http.request", path="/poll/", method="POST") == (first, {})
    assert matched(router, "http.request", path="/poll/", method="GET") is None
    assert matched(router, "http.request", path="/poll/x", method="POST") is None


def test_filters_match_at_the_start_of_the_value():
    router = Router([route("http.request", first, path=r"/a")])
    assert matched(router, "http.request", path="/a/b") == (first, {})
    assert matched(router, "http.request", path="/b/a") is None


def test_a_filter_on_a_missing_key_does_not_match():
    router = Router([route("http.request", first, method=r"^GET$")])
    assert matched(router, "http.request", path="/") is None


def test_filters_match_bytes_values_decoded_as_latin1():
    router = Router([route("http.request", first, query_string=r"^debug=1")])
    assert matched(router, "http.request", query_string=b"debug=1&x=2") == (first, {})


def test_named_groups_become_keyword_arguments():
    router = Router([route("http.request", first, path=r"^/articles/(?P<year>\d{4})/(?P<slug>[a-z-]+)/$")])
    assert matched(router, "http.request", path="/articles/2017/hello-you/") == (
        first,
        {"year": "2017", "slug": "hello-you"},
    )


def test_the_first_matching_route_wins():
    router = Router([route("http.request", first, path=r"^/a"), route("http.request", second)])
    assert matched(router, "http.request", path="/a")[0] is first
    assert matched(router, "http.request", path="/b")[0] is second


def test_include_strips_the_matched_path_prefix_for_inner_routes():
    inner = [route("websocket.connect", first, path=r"^/(?P<room>[a-z]+)/$")]
    router = Router([include(inner, path=r"^/chat")])
    assert matched(router, "websocket.connect", path="/chat/lobby/") == (first, {"room": "lobby"})
    assert matched(router, "websocket.connect", path="/lobby/") is None


def test_nested_includes_combine_prefixes_and_keyword_arguments():
    inner = [route("http.request", first, path=r"^/(?P<item>\d+)/$")]
    middle = [include(inner, path=r"^/items")]
    router = Router([include(middle, path=r"^/api/(?P<version>v\d)")])
    assert matched(router, "http.request", path="/api/v2/items/7/") == (first, {"version": "v2", "item": "7"})


def test_include_falls_through_to_later_routes_when_nothing_inside_matches():
    inner = [route("http.request", first, path=r"^/x$")]
    router = Router([include(inner, path=r"^/a"), route("http.request", second)])
    assert matched(router, "http.request", path="/a/y")[0] is second


def test_the_consumer_sees_the_full_unstripped_path():
    router = Router([include([route("http.request", first)], path=r"^/chat")])
    content = {"path": "/chat/lobby/"}
    router.match("http.request", content)
    assert content == {"path": "/chat/lobby/"}


def test_include_accepts_a_dotted_path_to_a_routing_list():
    router = Router([include("examples.routing_demo.routing.chat_routing", path=r"^/chat")])
    assert matched(router, "websocket.receive", path="/chat/room-1/")[1] == {"room": "room-1"}


def test_consumers_may_be_dotted_import_strings():
    router = Router([route("http.request", "examples.hello_http.routing.http_consumer")])
    from examples.hello_http.routing import http_consumer

    assert matched(router, "http.request", path="/")[0] is http_consumer


def test_the_routing_may_be_a_module_attribute_string():
    router = Router("examples.chat.routing:channel_routing")
    assert router.channels == ["websocket.connect", "websocket.disconnect", "websocket.receive"]


def test_a_dict_routing_maps_channels_to_consumers():
    assert matched(Router({"http.request": first}), "http.request") == (first, {})


def test_route_class_routes_every_channel_of_the_class():
    class Echo(WebsocketConsumer):
        pass

    router = Router([route_class(Echo, path=r"^/echo/$")])
    assert router.channels == ["websocket.connect", "websocket.disconnect", "websocket.receive"]
    assert matched(router, "websocket.receive", path="/echo/")[0] is Echo
    assert matched(router, "websocket.receive", path="/other/") is None


def test_compiled_patterns_are_accepted_as_filters():
    router = Router([route("http.request", first, path=re.compile(r"^/x$"))])
    assert matched(router, "http.request", path="/x") == (first, {})


def test_a_bad_regular_expression_is_reported_when_the_router_is_built():
    with pytest.raises(RoutingError, match=r"routing\[1\].*bad regular expression for path='\^/\(unclosed'"):
        Router([route("http.request", first), route("http.request", first, path=r"^/(unclosed")])


def test_a_bad_regular_expression_inside_an_include_names_where_it_is():
    with pytest.raises(RoutingError, match=r"routing\[0\] include.*\[0\].*bad regular expression"):
        Router([include([route("http.request", first, method="[")], path="^/a")])


def test_a_failed_consumer_import_is_reported_when_the_router_is_built():
    with pytest.raises(RoutingError, match=r"cannot import module 'examples.nothing_here'"):
        Router([route("http.request", "examples.nothing_here.consumer")])


def test_a_missing_consumer_attribute_is_reported_when_the_router_is_built():
    with pytest.raises(RoutingError, match=r"has no attribute 'nope'"):
        Router([route("http.request", "examples.hello_http.routing.nope")])


def test_a_consumer_that_is_not_callable_is_refused():
    with pytest.raises(RoutingError, match=r"is not callable"):
        Router([route("http.request", "examples.hello_http.routing.channel_routing")])


def test_process_specific_channels_cannot_be_routed():
    with pytest.raises(RoutingError, match=r"process-specific"):
        Router([route("websocket.send!", first)])


def test_routing_entries_must_be_routes_or_includes():
    with pytest.raises(RoutingError, match=r"routing\[0\] is 'http.request'"):
        Router(["http.request"])


def test_a_filter_value_must_be_a_pattern():
    with pytest.raises(RoutingError, match=r"filter path= must be a regular expression string"):
        Router([route("http.request", first, path=3)])
