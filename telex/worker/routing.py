"""Routing: which consumer runs for a message, as in Channels 1.x.

A routing list holds ``route(channel, consumer, **filters)``,
``route_class(Consumer, **filters)`` and ``include(routing, **filters)``.
Filters are regular expressions matched (``re.match``, so anchored at the
start) against message keys; named groups become keyword arguments of the
consumer. ``include`` strips the part of ``path`` its filter matched before
the inner routes' filters run, so inner routes are written relative to the
mount point. Everything is checked and compiled when the :class:`Router` is
built — a worker reports a bad regex or a failed import at start, not at the
first message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._importing import ImportStringError, import_string

__all__ = ["Include", "Route", "RouteClass", "Router", "RoutingError", "include", "route", "route_class"]


class RoutingError(ValueError):
    """A routing list that cannot be used, with where and why."""


class Route:
    """``channel`` → ``consumer`` (a callable or a dotted import string), with filters."""

    def __init__(self, channel: str, consumer: Callable[..., Any] | str, **filters: Any) -> None:
        self.channels = [channel]
        self.consumer = consumer
        self.filters = filters

    def __repr__(self) -> str:
        return f"route({self.channels[0]!r}, {self.consumer!r}, **{self.filters!r})"


class RouteClass(Route):
    """A class-based consumer routed on every channel its ``channel_names()`` lists."""

    def __init__(self, consumer: type, **filters: Any) -> None:
        names = getattr(consumer, "channel_names", None)
        if not callable(names):
            raise RoutingError(f"route_class({consumer!r}): the class has no channel_names() method")
        self.channels = sorted(names())
        self.consumer = consumer
        self.filters = filters

    def __repr__(self) -> str:
        return f"route_class({self.consumer!r}, **{self.filters!r})"


class Include:
    """A routing list (or its dotted path) mounted under ``filters``."""

    def __init__(self, routing: Any, **filters: Any) -> None:
        self.routing = routing
        self.filters = filters

    def __repr__(self) -> str:
        return f"include({self.routing!r}, **{self.filters!r})"


def route(channel: str, consumer: Callable[..., Any] | str, **filters: Any) -> Route:
    return Route(channel, consumer, **filters)


def route_class(consumer: type, **filters: Any) -> RouteClass:
    return RouteClass(consumer, **filters)


def include(routing: Any, **filters: Any) -> Include:
    return Include(routing, **filters)


Filters = list[tuple[str, re.Pattern[str]]]


class _Leaf:
    __slots__ = ("channels", "consumer", "filters", "name")

    def __init__(self, channels: frozenset[str], consumer: Callable[..., Any], filters: Filters, name: str):
        self.channels = channels
        self.consumer = consumer
        self.filters = filters
        self.name = name


class _Mount:
    __slots__ = ("channels", "children", "filters")

    def __init__(self, channels: frozenset[str], filters: Filters, children: list[_Leaf | _Mount]):
        self.channels = channels
        self.filters = filters
        self.children = children


Match = tuple[Callable[..., Any], dict[str, Any], str]


class Router:
    """A compiled routing list: ``match(channel, content)`` → consumer and kwargs."""

    def __init__(self, routing: Any) -> None:
        if isinstance(routing, Router):
            self.entries: list[_Leaf | _Mount] = list(routing.entries)
        else:
            self.entries = _compile_list(_load(routing, "routing"), "routing")
        channels: set[str] = set()
        for entry in self.entries:
            channels |= entry.channels
        self.channels = sorted(channels)

    def match(self, channel: str, content: Mapping[str, Any]) -> Match | None:
        """The first route whose channel and filters match, with its kwargs and name."""
        return _match(self.entries, channel, content, {}, {})

    def add_fallback(self, channel: str, consumer: Callable[..., Any]) -> None:
        """Add a last-resort route (the default ``websocket.connect`` and ``http.request`` consumers)."""
        self.entries.append(_Leaf(frozenset([channel]), consumer, [], _name_of(consumer)))
        if channel not in self.channels:
            self.channels = sorted([*self.channels, channel])


def _match(
    entries: list[_Leaf | _Mount],
    channel: str,
    content: Mapping[str, Any],
    overrides: dict[str, str],
    kwargs: dict[str, Any],
) -> Match | None:
    for entry in entries:
        if channel not in entry.channels:
            continue
        found = _match_filters(entry.filters, content, overrides, isinstance(entry, _Mount))
        if found is None:
            continue
        inner_overrides, groups = found
        if isinstance(entry, _Leaf):
            return entry.consumer, {**kwargs, **groups}, entry.name
        result = _match(entry.children, channel, content, inner_overrides, {**kwargs, **groups})
        if result is not None:
            return result
    return None


def _match_filters(
    filters: Filters, content: Mapping[str, Any], overrides: dict[str, str], strip: bool
) -> tuple[dict[str, str], dict[str, Any]] | None:
    groups: dict[str, Any] = {}
    new_overrides = overrides
    for key, regex in filters:
        value = overrides[key] if key in overrides else content.get(key)
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        elif not isinstance(value, str):
            return None
        found = regex.match(value)
        if found is None:
            return None
        groups.update(found.groupdict())
        # Channels 1.x semantics: an include consumes the matched prefix of
        # the path, so inner routes see only the rest.
        if strip and key == "path":
            new_overrides = {**new_overrides, key: value[found.end() :]}
    return new_overrides, groups


def _load(routing: Any, where: str) -> list[Any]:
    if isinstance(routing, str):
        routing = _import(routing, "routing", where)
    if isinstance(routing, Mapping):
        # Channels 1.0 allowed {channel: consumer}.
        return [Route(channel, consumer) for channel, consumer in routing.items()]
    if not isinstance(routing, list | tuple):
        raise RoutingError(f"{where} must be a list of route()/include(), not {type(routing).__name__}")
    return list(routing)


def _compile_list(items: Iterable[Any], where: str) -> list[_Leaf | _Mount]:
    compiled: list[_Leaf | _Mount] = []
    for index, item in enumerate(items):
        here = f"{where}[{index}]"
        if isinstance(item, Include):
            here = f"{here} {item!r}"
            inner = _compile_list(_load(item.routing, here), here)
            channels: frozenset[str] = frozenset().union(*(child.channels for child in inner))
            compiled.append(_Mount(channels, _compile_filters(item.filters, here), inner))
        elif isinstance(item, Route):
            here = f"{here} {item!r}"
            for channel in item.channels:
                _check_channel(channel, here)
            consumer = _resolve_consumer(item.consumer, here)
            filters = _compile_filters(item.filters, here)
            compiled.append(_Leaf(frozenset(item.channels), consumer, filters, _name_of(consumer)))
        else:
            raise RoutingError(f"{here} is {item!r}; expected route(), route_class() or include()")
    return compiled


def _check_channel(channel: Any, where: str) -> None:
    if not isinstance(channel, str) or not channel:
        raise RoutingError(f"{where}: the channel must be a non-empty str")
    if "!" in channel:
        raise RoutingError(f"{where}: process-specific channels ({channel!r}) cannot be routed")


def _compile_filters(filters: Mapping[str, Any], where: str) -> Filters:
    compiled: Filters = []
    for key, pattern in filters.items():
        if isinstance(pattern, re.Pattern):
            compiled.append((key, pattern))
            continue
        if not isinstance(pattern, str):
            raise RoutingError(f"{where}: filter {key}= must be a regular expression string, not {pattern!r}")
        try:
            compiled.append((key, re.compile(pattern)))
        except re.error as exc:
            raise RoutingError(f"{where}: bad regular expression for {key}={pattern!r}: {exc}") from None
    return compiled


def _resolve_consumer(consumer: Any, where: str) -> Callable[..., Any]:
    if isinstance(consumer, str):
        consumer = _import(consumer, "consumer", where)
    if not callable(consumer):
        raise RoutingError(f"{where}: the consumer {consumer!r} is not callable")
    return consumer


def _import(spec: str, what: str, where: str) -> Any:
    try:
        return import_string(spec, what)
    except ImportStringError as exc:
        raise RoutingError(f"{where}: {exc}") from None
    except Exception as exc:
        # The module itself failed (SyntaxError, NameError, ...): say so in one line.
        reason = f"{type(exc).__name__}: {exc}"
        raise RoutingError(f"{where}: importing {what} {spec!r} failed: {reason}") from None


def _name_of(consumer: Any) -> str:
    module = getattr(consumer, "__module__", None)
    name = getattr(consumer, "__qualname__", None) or repr(consumer)
    return f"{module}.{name}" if module else name
