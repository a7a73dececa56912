"""Running rtbridge's app and small WebSocket peers inside a test's event loop, on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import uvicorn
from fastapi import FastAPI
from websockets.asyncio.server import Server, ServerConnection, serve

__all__ = ["free_port", "run_app", "run_ws_server"]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 right now (for peers that cannot bind port 0 themselves)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def run_app(app: FastAPI, **config: object) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (port 0) and yield ``http://127.0.0.1:PORT``."""
    cfg = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        ws_per_message_deflate=False,
        **config,
    )  # type: ignore[arg-type]
    server = uvicorn.Server(cfg)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def run_ws_server(
    handler: Callable[[ServerConnection], Awaitable[None]],
) -> AsyncIterator[tuple[Server, str]]:
    """A websockets server on 127.0.0.1 (port 0); yields it and its ``ws://`` base URL."""
    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield server, f"ws://127.0.0.1:{port}"
