"""Static files from the finders at ``STATIC_URL``, as Django's ``runserver`` serves them.

For development only (``runserver`` uses it with ``DEBUG``, or with
``--insecure``): every file is read by a worker thread and crosses the layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from django.contrib.staticfiles.handlers import StaticFilesHandlerMixin

from .handler import AsgiHandler, ViewConsumer

__all__ = ["StaticFilesConsumer", "StaticFilesHandler"]


class StaticFilesHandler(StaticFilesHandlerMixin, AsgiHandler):
    """Serve paths under ``STATIC_URL`` from the finders; hand every other request to ``application``."""

    def __init__(self, application: AsgiHandler | None = None) -> None:
        # Django's mixin: its load_middleware does nothing, its get_response serves the file.
        self.application = application if application is not None else AsgiHandler()
        self.base_url = urlparse(self.get_base_url())
        super().__init__()

    def __call__(self, message: Any) -> Iterator[dict]:
        if not self._should_handle(message["path"]):
            return self.application(message)
        return super().__call__(message)


class StaticFilesConsumer(ViewConsumer):
    """``ViewConsumer`` that serves static files first (what ``runserver`` routes ``http.request`` to)."""

    handler_class = StaticFilesHandler
