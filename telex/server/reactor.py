"""Install Twisted's asyncio reactor before anything imports the default one.

Telex runs on the asyncio reactor so asyncio libraries (redis-py's asyncio
client, used by the Redis layer) share the reactor's loop. It must be
installed before user modules are imported: one that does
``from twisted.internet import reactor`` would otherwise install the default.
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
