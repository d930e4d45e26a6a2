"""What ``telex worker --asgi`` must refuse, and an application whose startup fails."""

routing = []  # a Channels 1.x routing list


def sync_app(scope, receive, send):  # an ASGI 1 style callable: not async
    return None


class Asgi2App:  # ASGI 2's double callable
    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        return None


async def failing_startup(scope, receive, send):
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "no database"})
