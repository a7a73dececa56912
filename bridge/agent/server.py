"""The local agent's WebSocket server: handshake, one driver per connection, pacing, CLI entry.

``ws://HOST:PORT/v1/realtime`` (``?model=`` accepted) served with ``websockets``' asyncio API.
The handshake answers subprotocol ``realtime`` when offered, 404 for any other path and 401 when
a key is configured (``AgentSettings.api_key_env``) but neither ``Authorization: Bearer <key>``
nor the browser subprotocol ``openai-insecure-api-key.<key>`` carries it.

Per connection: the reader feeds frames to :class:`~bridge.agent.core.AgentCore`; a pump task
steps the active response every ``chunk_interval_s`` (100 ms of audio per step, so faster than
real time but not all at once); one writer task drains the outgoing queue and applies the
dialect edge. Producers enqueue whole batches synchronously, so event order is exactly the
core's; the queue is bounded by making producers wait while it is above a high-water mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from bridge.agent.core import AgentCore
from bridge.agent.edge import DialectEdge, ping_event
from bridge.agent.record import SessionRecord
from bridge.config import AgentSettings, Dialect
from bridge.errors import ConfigError
from bridge.realtime import wire

__all__ = ["PATH", "LocalAgent", "run_agent_forever"]

PATH = "/v1/realtime"
log = logging.getLogger("rtbridge.agent")
_HIGH_WATER = 64  # batches queued for the writer before producers wait
_INSECURE_KEY_PREFIX = "openai-insecure-api-key."

Event = dict[str, Any]


class LocalAgent:
    """The local reference Realtime agent. Use as ``async with LocalAgent(settings) as agent``.

    ``port=0`` in the settings picks a free port; ``url``/``port`` are known after
    :meth:`start`. ``sessions`` holds a live :class:`SessionRecord` per connection.
    """

    def __init__(
        self,
        settings: AgentSettings,
        *,
        chunk_interval_s: float = 0.02,
        ping_interval_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self.chunk_interval_s = chunk_interval_s
        self.ping_interval_s = ping_interval_s
        self.sessions: list[SessionRecord] = []
        self._server: Server | None = None
        self._api_key: str | None = None
        self.port: int = settings.port
        self.host: str = settings.host

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{PATH}"

    async def start(self) -> str:
        """Bind and serve; returns the ws URL. Raises ``ConfigError`` if the key is missing."""
        if self._server is not None:
            return self.url
        if self.settings.api_key_env:
            key = os.environ.get(self.settings.api_key_env)
            if not key:
                raise ConfigError(
                    f"agent api_key_env names ${self.settings.api_key_env}, which is not set"
                )
            self._api_key = key
        self._server = await serve(
            self._handle,
            self.settings.host,
            self.settings.port,
            process_request=self._process_request,
            select_subprotocol=_select_subprotocol,
            max_size=16 * 1024 * 1024,
            compression=None,
        )
        for sock in self._server.sockets:
            self.port = int(sock.getsockname()[1])
            break
        return self.url

    async def stop(self) -> None:
        """Close every connection (1001) and the listening socket."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def __aenter__(self) -> LocalAgent:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---- handshake ---------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path.rstrip("/") != PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        if self._api_key is None:
            return None
        auth = request.headers.get("Authorization", "")
        offered = _offered_subprotocols(request)
        keys = [auth[7:].strip()] if auth[:7].lower() == "bearer " else []
        keys += [
            p[len(_INSECURE_KEY_PREFIX) :] for p in offered if p.startswith(_INSECURE_KEY_PREFIX)
        ]
        if any(hmac.compare_digest(k.encode(), self._api_key.encode()) for k in keys):
            return None
        response = connection.respond(
            HTTPStatus.UNAUTHORIZED,
            wire.dumps(
                {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                        "message": "Incorrect API key provided.",
                        "param": None,
                    }
                }
            ),
        )
        response.headers["Content-Type"] = "application/json"
        return response

    # ---- one connection ----------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        parts = urlsplit(request.path if request is not None else PATH)
        query = dict(parse_qsl(parts.query))
        dialect = self.settings.dialect
        core = AgentCore(
            self.settings,
            model=query.get("model", "gpt-realtime"),
            now_s=int(time.time()),
            require_session_type=dialect is Dialect.GA,
            path=parts.path,
            query=query,
        )
        self.sessions.append(core.record)
        log.info(
            "agent session %s opened (%s, %s)", core.record.session_id, dialect.value, parts.path
        )
        edge = DialectEdge(dialect)
        outq: asyncio.Queue[list[Event]] = asyncio.Queue()
        drained = asyncio.Event()
        drained.set()
        wake = asyncio.Event()

        async def emit(batch: list[Event]) -> None:
            if batch:
                outq.put_nowait(batch)  # synchronous: batches keep the core's order
                if outq.qsize() > _HIGH_WATER:
                    drained.clear()
                    await drained.wait()

        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self._writer(ws, outq, drained, edge, core.record)),
                    tg.create_task(self._pump(core, emit, wake)),
                ]
                if dialect is Dialect.XAI:
                    tasks.append(tg.create_task(self._pinger(core, emit)))
                try:
                    await emit(edge.opening(core.opening(), core.conversation_created()))
                    async for frame in ws:
                        await emit(core.receive(frame, edge.inbound))
                        if core.streaming:
                            wake.set()
                except ConnectionClosed:
                    pass
                finally:
                    for task in tasks:
                        task.cancel()
        finally:
            core.close()
            log.info("agent session %s closed", core.record.session_id)

    async def _writer(
        self,
        ws: ServerConnection,
        outq: asyncio.Queue[list[Event]],
        drained: asyncio.Event,
        edge: DialectEdge,
        record: SessionRecord,
    ) -> None:
        open_ = True
        sent_types = record.sent_types
        while True:
            batch = await outq.get()
            if outq.qsize() <= _HIGH_WATER // 2:
                drained.set()
            if not open_:
                continue  # keep draining so producers never wait on a dead socket
            try:
                for ev in batch:
                    for out in [ev] if ev.get("type") == "ping" else _outbound(edge, ev):
                        await ws.send(wire.dumps(out))
                        sent_types.append(str(out.get("type")))
                        if log.isEnabledFor(logging.DEBUG):
                            log.debug("agent -> %s", wire.redact(out))
            except ConnectionClosed:
                open_ = False

    async def _pump(
        self,
        core: AgentCore,
        emit: Callable[[list[Event]], Awaitable[None]],
        wake: asyncio.Event,
    ) -> None:
        while True:
            await wake.wait()
            await emit(core.pump())
            if not core.streaming:
                wake.clear()
                continue
            await asyncio.sleep(self.chunk_interval_s)

    async def _pinger(
        self, core: AgentCore, emit: Callable[[list[Event]], Awaitable[None]]
    ) -> None:
        while True:
            await asyncio.sleep(self.ping_interval_s)
            await emit([ping_event(core.ids.event(), int(time.time() * 1000))])


def _outbound(edge: DialectEdge, ev: Event) -> list[Event]:
    try:
        return edge.outbound(ev)
    except Exception:  # a translator bug: send the GA event rather than lose it
        log.exception("agent: dialect translation failed for %s", ev.get("type"))
        return [ev]


def _offered_subprotocols(request: Request) -> list[str]:
    return [
        p.strip()
        for value in request.headers.get_all("Sec-WebSocket-Protocol")
        for p in value.split(",")
        if p.strip()
    ]


def _select_subprotocol(
    connection: ServerConnection, subprotocols: Sequence[Subprotocol]
) -> Subprotocol | None:
    return Subprotocol("realtime") if "realtime" in subprotocols else None


def run_agent_forever(settings: AgentSettings) -> int:
    """``rtbridge agent``: serve until Ctrl-C or SIGTERM; returns the exit status."""
    try:
        return asyncio.run(_run(settings))
    except KeyboardInterrupt:
        return 0


async def _run(settings: AgentSettings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    agent = LocalAgent(settings)
    try:
        await agent.start()
    except (ConfigError, OSError) as exc:
        print(f"rtbridge agent: {exc}", file=sys.stderr)
        return 2
    try:
        print(
            f"rtbridge agent listening on {agent.url} (dialect {settings.dialect.value}, "
            f"formats {','.join(settings.formats)}"
            + (f", key from ${settings.api_key_env}" if settings.api_key_env else ", no key")
            + ")",
            flush=True,
        )
        await stop.wait()
    finally:
        await agent.stop()
    return 0
