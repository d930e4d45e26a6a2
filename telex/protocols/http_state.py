"""The phases of one HTTP request in the server, as one table.

Pure: no Twisted, no I/O, so tests drive it directly (h11's ``_state.py`` is
the model). ``AsgiRequest`` feeds it events as they happen and asks it what
may happen next; the HTTP channels read ``body_complete`` and ``in_progress``.

    HEAD ──head read──► GATHERING ──request sent──► WAITING ──response started──► RESPONDING
                            │  └──response started (the server's own answer, an error)──┘   │
                            └──upgraded──► UPGRADED            response ended ──► DONE ◄────┤
                                                               aborted ──► ABORTED ◄────────┘
    any phase ──connection lost──► LOST

The rules the table keeps:

1. The request goes to the application at most once, and only before any
   response (``REQUEST_SENT`` leaves ``GATHERING`` only).
2. One response per request: it starts once (from ``GATHERING`` when the
   server answers itself or refuses, from ``WAITING`` when the application
   answers or the request times out) and ends once.
3. ``DONE``, ``ABORTED``, ``UPGRADED`` and ``LOST`` are ends: nothing is
   written or sent for the request after them, except that a connection
   can still be lost after an ending (``LOST`` is accepted everywhere).
4. Two facts sit beside the phase: ``forwarded`` (the application has the
   request, so it is owed an ``http.disconnect`` if the response does not
   finish) and ``body_complete`` (the client has sent the whole body; until
   then an early response must close the connection, not read on).
"""

from __future__ import annotations


# Plain string constants rather than Enums: on Python 3.11 every
# ``SomeEnum.MEMBER`` lookup goes through EnumType.__getattr__'s slow path,
# and the request makes a dozen of them per request.
class Phase:
    """Where a request is; see the table below."""

    HEAD = "head"  # the request head is not handled yet
    GATHERING = "gathering"  # head handled; the body is gathered for http.request
    WAITING = "waiting"  # http.request is with the application; no response yet
    RESPONDING = "responding"  # a response has started; its body follows
    DONE = "done"  # the response was written in full
    ABORTED = "aborted"  # ended mid-response: the connection closes
    UPGRADED = "upgraded"  # the connection belongs to the WebSocket side now
    LOST = "lost"  # the connection was lost


class Event:
    """What moves a request on."""

    HEAD_READ = "head read"
    REQUEST_SENT = "request sent"
    RESPONSE_STARTED = "response started"
    RESPONSE_ENDED = "response ended"
    ABORTED = "aborted"
    UPGRADED = "upgraded"
    CONNECTION_LOST = "connection lost"


_LOST = {Event.CONNECTION_LOST: Phase.LOST}

TRANSITIONS: dict[str, dict[str, str]] = {
    Phase.HEAD: {Event.HEAD_READ: Phase.GATHERING, **_LOST},
    Phase.GATHERING: {
        Event.REQUEST_SENT: Phase.WAITING,
        Event.RESPONSE_STARTED: Phase.RESPONDING,
        Event.UPGRADED: Phase.UPGRADED,
        Event.ABORTED: Phase.ABORTED,
        **_LOST,
    },
    Phase.WAITING: {Event.RESPONSE_STARTED: Phase.RESPONDING, Event.ABORTED: Phase.ABORTED, **_LOST},
    Phase.RESPONDING: {Event.RESPONSE_ENDED: Phase.DONE, Event.ABORTED: Phase.ABORTED, **_LOST},
    Phase.DONE: dict(_LOST),
    Phase.ABORTED: dict(_LOST),
    Phase.UPGRADED: dict(_LOST),
    Phase.LOST: dict(_LOST),
}

ENDED = frozenset((Phase.DONE, Phase.ABORTED, Phase.UPGRADED, Phase.LOST))


class PhaseError(Exception):
    """An event the current phase does not allow: a bug in the adapter, never the client's."""


class RequestState:
    """Where one request is (``phase``, and whether that is an end), plus the two facts beside it."""

    __slots__ = ("body_complete", "ended", "forwarded", "phase")

    def __init__(self) -> None:
        self.phase: str = Phase.HEAD
        #: Nothing more is written or sent for this request.
        self.ended = False
        self.forwarded = False
        self.body_complete = False

    def handle(self, event: str) -> str:
        """Move on by ``event``; returns the phase it left."""
        previous = self.phase
        try:
            phase = self.phase = TRANSITIONS[previous][event]
        except KeyError:
            raise PhaseError(f"{event!r} is not allowed in phase {previous!r}") from None
        self.ended = phase in ENDED
        if event is Event.REQUEST_SENT:
            self.forwarded = True
        return previous

    @property
    def in_progress(self) -> bool:
        """Someone is working on the answer (the application, or the server's own)."""
        return self.phase is Phase.WAITING or self.phase is Phase.RESPONDING

    @property
    def owes_disconnect(self) -> bool:
        """The application has the request and its response did not finish."""
        return self.forwarded and self.phase is not Phase.DONE and self.phase is not Phase.LOST
