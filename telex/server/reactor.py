"""Install Twisted's asyncio reactor before anything imports the default one.

Telex runs on the asyncio reactor so asyncio libraries (redis-py's asyncio
client, used by the Redis layer) share the reactor's loop. It must be
installed before user modules are imported: one that does
``from twisted.internet import reactor`` would otherwise install the default.

Its clock is the loop's monotonic one. Twisted's reactors read the wall
clock, so a stepped system clock (NTP, a resumed VM) fired every timeout
early, or held them all, by the size of the step; the asyncio loop already
schedules by the monotonic clock, and now the two agree. Nothing in Telex
reads ``reactor.seconds()`` as a date.
"""

from __future__ import annotations

import asyncio
import sys


class ReactorAlreadyInstalled(RuntimeError):
    pass


def install_reactor() -> None:
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import asyncioreactor, reactor

        if isinstance(reactor, asyncioreactor.AsyncioSelectorReactor):
            return
        raise ReactorAlreadyInstalled(
            f"a {type(reactor).__name__} was installed before Telex could install the asyncio reactor"
        )
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    from twisted.internet import reactor

    reactor.seconds = loop.time  # type: ignore[method-assign]
