"""Finding the ASGI 3 application a ``--asgi`` spec names, and refusing anything else."""

from __future__ import annotations

import inspect
from typing import Any

from ..._importing import ImportStringError, import_string


class ApplicationError(ValueError):
    """The ``--asgi`` spec does not name an ASGI 3 application; the text says why."""


def load_application(spec: Any) -> Any:
    """The application ``spec`` names (``module:attribute``), or ``spec`` itself if it is one.

    Refused with :class:`ApplicationError`: a spec that does not import, a
    class (ASGI 2's double callable), a routing list or ASGI 1 consumer, and
    any callable that is not ``async``. The check is done here, before anything
    is received, so a wrong spec is a start-up error and never a 500 per request.
    """
    if isinstance(spec, str):
        try:
            app = import_string(spec, "ASGI application")
        except ImportStringError as exc:
            raise ApplicationError(str(exc)) from None
        name = repr(spec)
    else:
        app, name = spec, repr(spec)
    if inspect.isclass(app):
        raise ApplicationError(
            f"{name} is a class: an ASGI 2 application or a consumer class; --asgi needs an ASGI 3 "
            "application, an async callable taking (scope, receive, send)"
        )
    if not callable(app):
        what = (
            "a routing list (ASGI 1): run it as telex worker ROUTING"
            if isinstance(app, list | dict)
            else (f"a {type(app).__name__}")
        )
        raise ApplicationError(f"{name} is not an ASGI 3 application but {what}")
    call = app if inspect.isroutine(app) else type(app).__call__
    if not (inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call)):
        raise ApplicationError(
            f"{name} is not an ASGI 3 application: it is not an async callable taking (scope, receive, "
            "send) (an ASGI 1 consumer belongs in a routing list: telex worker ROUTING)"
        )
    return app
