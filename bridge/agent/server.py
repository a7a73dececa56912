"""The local agent's WebSocket server: handshake, one driver per connection, pacing, CLI entry.

Served with ``websockets``' asyncio API at the path of the configured dialect
(``/v1/realtime`` with ``?model=`` for GA, beta, xAI and Azure, Gemini's ``BidiGenerateContent``
path, GPT-Live's ``/v1/live/sessions``: see :mod:`bridge.agent.edge`). The handshake answers
subprotocol ``realtime`` when offered, 404 for any other path and 401 when a key is configured
(``AgentSettings.api_key_env``) but not presented where the dialect presents it (Bearer or the
browser subprotocol; Azure also ``api-key``; Gemini ``?key=`` or ``x-goog-api-key``).

Per connection: the reader feeds frames to :class:`~bridge.agent.core.AgentCore`; a pump task
steps the active response every ``chunk_interval_s`` (100 ms of audio per step, so faster than
real time but not all at once), holding a response's first step back by
``AgentSettings.first_audio_delay_ms`` (an upstream's think time, for turn-latency tests);
one writer task drains the outgoing queue and applies the dialect edge. Producers enqueue
whole batches synchronously, so event order is exactly the core's; the queue is bounded by
making producers wait while it is above a high-water mark. With ``AgentSettings.session_max_s``
a timer ends each session the way its dialect does.
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

from bridge.agent.conversation import Conversation
from bridge.agent.core import AgentCore
from bridge.agent.edge import (
    Close,
    DialectEdge,
    EdgeClose,
    Native,
    Out,
    RenamingEdge,
    bearer_keys,
    ping_event,
)
from bridge.agent.gemini_edge import GEMINI_PATHS, GeminiEdge
from bridge.agent.live_edge import LIVE_PATHS, LiveEdge
from bridge.agent.record import SessionRecord
from bridge.config import AgentSettings, Dialect
from bridge.errors import ConfigError
from bridge.realtime import wire

__all__ = ["PATH", "LocalAgent", "run_agent_forever"]

PATH = "/v1/realtime"
log = logging.getLogger("rtbridge.agent")
_HIGH_WATER = 64  # batches queued for the writer before producers wait

Event = dict[str, Any]


def dialect_paths(dialect: Dialect) -> frozenset[str]:
    """The request paths the agent serves for ``dialect``."""
    if dialect is Dialect.GEMINI:
        return GEMINI_PATHS
    if dialect is Dialect.GPT_LIVE:
        return LIVE_PATHS
    return RenamingEdge(dialect).paths


def dialect_path(dialect: Dialect) -> str:
    """The path a client of ``dialect`` connects to (the first of :func:`dialect_paths`)."""
    if dialect is Dialect.GEMINI:
        return "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    if dialect is Dialect.GPT_LIVE:
        return "/v1/live/sessions"
    return PATH


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
        #: Gemini resumption handles this agent issued -> the conversation they continue
        self.resumable: dict[str, Conversation] = {}
        self._server: Server | None = None
        self._api_key: str | None = None
        self.port: int = settings.port
        self.host: str = settings.host

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{dialect_path(self.settings.dialect)}"

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
        parts = urlsplit(request.path)
        dialect = self.settings.dialect
        if parts.path.rstrip("/") not in dialect_paths(dialect):
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        if self._api_key is None:
            return None
        keys = _presented_keys(
            dialect, request.headers, dict(parse_qsl(parts.query)), _offered_subprotocols(request)
        )
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
            require_session_type=dialect in (Dialect.GA, Dialect.AZURE),
            path=parts.path,
            query={k: v for k, v in query.items() if k != "key"},
        )
        self.sessions.append(core.record)
        log.info(
            "agent session %s opened (%s, %s)", core.record.session_id, dialect.value, parts.path
        )
        edge = self._edge(core)
        outq: asyncio.Queue[list[Out]] = asyncio.Queue()
        drained = asyncio.Event()
        drained.set()
        wake = asyncio.Event()

        async def emit(batch: list[Out]) -> None:
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
                if edge.pings:
                    tasks.append(tg.create_task(self._pinger(core, emit)))
                if self.settings.session_max_s is not None:
                    tasks.append(tg.create_task(self._expire(core, edge, emit)))
                try:
                    await emit(edge.opening(core.opening(), core.conversation_created()))
                    async for frame in ws:
                        try:
                            events: list[Out] = list(core.receive(frame, edge.inbound))
                        except EdgeClose as exc:
                            await emit([exc.close])
                            break
                        await emit([*edge.replies(), *events])
                        if core.streaming:
                            wake.set()
                except ConnectionClosed:
                    pass
                finally:
                    for task in tasks[1:]:
                        task.cancel()
                    outq.put_nowait([_STOP])  # flush what is queued (a close, a last event)
                    try:
                        await asyncio.wait_for(asyncio.shield(tasks[0]), timeout=5.0)
                    except TimeoutError:
                        tasks[0].cancel()
        finally:
            core.close()
            log.info("agent session %s closed", core.record.session_id)

    def _edge(self, core: AgentCore) -> DialectEdge:
        dialect = self.settings.dialect
        if dialect is Dialect.GEMINI:
            return GeminiEdge(core, self.resumable)
        if dialect is Dialect.GPT_LIVE:
            return LiveEdge(core, now_s=int(time.time()))
        return RenamingEdge(dialect)

    async def _writer(
        self,
        ws: ServerConnection,
        outq: asyncio.Queue[list[Out]],
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
            if any(item is _STOP for item in batch):
                return
            if not open_:
                continue  # keep draining so producers never wait on a dead socket
            try:
                for item in batch:
                    for out in _outbound(edge, item):
                        if isinstance(out, Close):
                            record.close_code = out.code
                            await ws.close(out.code, out.reason)
                            open_ = False
                            break
                        msg = out.event if isinstance(out, Native) else out
                        await ws.send(wire.dumps(msg))
                        sent_types.append(str(msg.get("type") or next(iter(msg), "")))
                        if log.isEnabledFor(logging.DEBUG):
                            log.debug("agent -> %s", wire.redact(msg))
                    if not open_:
                        break
            except ConnectionClosed:
                open_ = False

    async def _pump(
        self,
        core: AgentCore,
        emit: Callable[[list[Out]], Awaitable[None]],
        wake: asyncio.Event,
    ) -> None:
        delay_s = self.settings.first_audio_delay_ms / 1000.0
        started: str | None = None  # the latest response whose first step went out
        while True:
            await wake.wait()
            active = core.active
            if delay_s and active is not None and active.id != started:
                started = active.id
                await asyncio.sleep(delay_s)  # its first audio delta comes this much later
            await emit(list(core.pump()))
            if not core.streaming:
                wake.clear()
                continue
            await asyncio.sleep(self.chunk_interval_s)

    async def _pinger(self, core: AgentCore, emit: Callable[[list[Out]], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(self.ping_interval_s)
            await emit([Native(ping_event(core.ids.event(), int(time.time() * 1000)))])

    async def _expire(
        self, core: AgentCore, edge: DialectEdge, emit: Callable[[list[Out]], Awaitable[None]]
    ) -> None:
        """End the session after ``session_max_s``, as the dialect does (Gemini warns first)."""
        total = self.settings.session_max_s or 0.0
        notice = min(self.settings.go_away_notice_s, total)
        warning = edge.going_away(notice)
        if warning:
            await asyncio.sleep(total - notice)
            await emit(warning)
            await asyncio.sleep(notice)
        else:
            await asyncio.sleep(total)
        await emit(edge.expired(core.ids.event()))


#: Tells the writer its connection is over (after what was queued before it).
_STOP = Native({"type": "<stop>"})


def _outbound(edge: DialectEdge, item: Out) -> list[Out]:
    if isinstance(item, Native | Close):
        return [item]
    try:
        return edge.outbound(item)
    except Exception:  # a translator bug: send the GA event rather than lose it
        log.exception("agent: dialect translation failed for %s", item.get("type"))
        return [item]


def _presented_keys(
    dialect: Dialect, headers: Any, query: dict[str, str], subprotocols: list[str]
) -> list[str]:
    """The keys a client presented, where its dialect puts them."""
    if dialect is Dialect.GEMINI:
        return [k for k in (query.get("key"), headers.get("x-goog-api-key")) if k]
    keys = bearer_keys(headers, subprotocols)
    if dialect is Dialect.AZURE and headers.get("api-key"):
        keys.append(headers["api-key"])
    return keys


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
