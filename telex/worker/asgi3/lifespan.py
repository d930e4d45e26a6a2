"""The lifespan scope: startup and shutdown once per worker process.

An application that raises on the lifespan scope (Django's ASGI handler
does), or returns without answering, runs without it: one log line, as
uvicorn's ``--lifespan auto`` does. A ``lifespan.startup.failed`` stops the
worker before it receives anything.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .scopes import ASGI

logger = logging.getLogger("telex.worker")


class LifespanFailed(Exception):
    """The application answered ``lifespan.startup.failed``; the text is its message."""


class Lifespan:
    def __init__(self, app: Any) -> None:
        self.app = app
        #: ``state`` of the lifespan scope; a shallow copy goes into every scope.
        self.state: dict[str, Any] = {}
        self.supported = False
        self._answered = False  # the application answered lifespan.startup either way
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Run the application's startup; :class:`LifespanFailed` if it says it failed."""
        self._task = asyncio.ensure_future(self._run())
        await self._events.put({"type": "lifespan.startup"})
        answer = await self._answer()
        if answer is None:
            return
        if answer["type"] == "lifespan.startup.failed":
            raise LifespanFailed(str(answer.get("message") or "no message"))
        self.supported = True

    async def shutdown(self, timeout: float) -> None:
        """Run the application's shutdown, waiting at most ``timeout`` seconds."""
        if not self.supported or self._task is None:
            return
        await self._events.put({"type": "lifespan.shutdown"})
        try:
            answer = await asyncio.wait_for(self._answer(), timeout)
        except TimeoutError:
            logger.warning("the application did not finish its lifespan shutdown within %gs", timeout)
            self._task.cancel()
            return
        if answer is not None and answer["type"] == "lifespan.shutdown.failed":
            logger.error(
                "the application's lifespan shutdown failed: %s", answer.get("message") or "no message"
            )

    async def _answer(self) -> dict[str, Any] | None:
        """The application's next lifespan event, or None if it ended without one."""
        assert self._task is not None
        waiting = asyncio.ensure_future(self._answers.get())
        await asyncio.wait({waiting, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if waiting.done():
            return waiting.result()
        waiting.cancel()
        return None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": dict(ASGI), "state": self.state}
        try:
            await self.app(scope, self._events.get, self._send)
        except Exception as exc:
            if self._answered:
                logger.exception("the application raised in its lifespan scope")
            else:
                logger.info(
                    "the application does not support the lifespan scope (%s: %s); running without it",
                    type(exc).__name__,
                    exc,
                )
        else:
            if not self._answered:
                logger.info("the application returned from the lifespan scope at once; running without it")

    async def _send(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind not in (
            "lifespan.startup.complete",
            "lifespan.startup.failed",
            "lifespan.shutdown.complete",
            "lifespan.shutdown.failed",
        ):
            raise ValueError(f"unknown lifespan event type {kind!r}")
        if kind.startswith("lifespan.startup."):
            self._answered = True
        await self._answers.put(event)
