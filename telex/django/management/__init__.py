"""What ``runserver`` and ``runworker`` share: logging from ``-v`` and the worker they run."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import CommandError

from ..._logging import LINE_FORMAT
from ...layers import unreachable
from ..asgi import InvalidChannelLayerError, channel_layers
from ..worker import DjangoWorker

#: ``-v`` of a management command → level of the ``telex`` loggers.
LEVELS = {0: logging.WARNING, 1: logging.INFO}


def setup_logging(verbosity: int) -> None:
    """Show Telex's log on stderr at the level ``-v`` asks for.

    Only when the project's ``LOGGING`` leaves the ``telex`` logger alone:
    a project that configured it keeps its own handlers and level.
    """
    logger = logging.getLogger("telex")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LINE_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(LEVELS.get(verbosity, logging.DEBUG))
    logger.propagate = False


def serve_static(use_static_handler: bool = True, insecure: bool = False) -> bool:
    """Whether ``http.request`` should go to the static files consumer, as Django's runserver decides."""
    return (
        use_static_handler
        and apps.is_installed("django.contrib.staticfiles")
        and (settings.DEBUG or insecure)
    )


def check_reachable(wrapper: Any) -> None:
    """Fail at start, with one line naming the alias, when a network layer cannot be reached."""
    reason = unreachable(wrapper.channel_layer)
    if reason is not None:
        raise CommandError(f"CHANNEL_LAYERS[{wrapper.alias!r}]: {reason}")


def cross_process_layer(alias: str) -> Any:
    """The wrapper of ``alias`` for a command that runs beside a server: not in-memory, and reachable."""
    try:
        wrapper = channel_layers[alias]
    except InvalidChannelLayerError as exc:
        raise CommandError(str(exc)) from None
    if wrapper.local_only():
        raise CommandError(
            f"CHANNEL_LAYERS[{alias!r}]: the in-memory layer cannot be used across processes; "
            "set its BACKEND to a cross-process layer such as asgi_redis.RedisChannelLayer"
        )
    check_reachable(wrapper)
    return wrapper


class CommandWorker(DjangoWorker):
    """A :class:`DjangoWorker` whose unrouted ``http.request`` goes to ``http_consumer`` when given
    (the static files consumer, which hands everything else to Django's views)."""

    def __init__(self, *args: Any, http_consumer: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        # Set before the base class asks for the fallbacks.
        self.http_consumer = http_consumer
        super().__init__(*args, **kwargs)

    def fallbacks(self) -> dict[str, Callable[..., Any]]:
        fallbacks = super().fallbacks()
        if self.http_consumer is not None:
            fallbacks["http.request"] = self.http_consumer
        return fallbacks


def http_consumer(use_static: bool) -> Callable[..., Any] | None:
    if not use_static:
        return None
    from ..staticfiles import StaticFilesConsumer

    return StaticFilesConsumer()
