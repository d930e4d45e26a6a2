"""A Starlette application for ``telex worker --asgi``: lifespan state, streaming both ways, a WebSocket."""

from __future__ import annotations

import contextlib

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"started_by": "starlette lifespan"}


async def hello(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "started_by": request.state.started_by,
            "name": request.path_params["name"],
            "q": request.query_params.get("q"),
        }
    )


async def upload(request: Request) -> StreamingResponse:
    # Read before responding: under ASGI spec 2.3 a StreamingResponse also
    # listens for http.disconnect, and that listener would take body events.
    chunks = [chunk async for chunk in request.stream()]

    async def upper():
        for chunk in chunks:
            yield chunk.upper()

    return StreamingResponse(upper(), media_type="application/octet-stream")


async def chat(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="chat.v1" if "chat.v1" in websocket.scope["subprotocols"] else None)
    async for text in websocket.iter_text():
        await websocket.send_text(f"starlette: {text}")


app = Starlette(
    routes=[
        Route("/hello/{name}", hello),
        Route("/upload", upload, methods=["POST"]),
        WebSocketRoute("/chat", chat),
    ],
    lifespan=lifespan,
)
