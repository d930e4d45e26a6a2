"""Routing lists for the worker: ``from telex.routing import route, include``."""

from .worker.routing import Router, RoutingError, include, route, route_class

__all__ = ["Router", "RoutingError", "include", "route", "route_class"]
