"""The upstream client: one WebSocket per session to a configured Realtime upstream.

rtbridge speaks GA to everything above this module; the upstream declares its dialect and the
:class:`~bridge.realtime.dialects.Translator` converts at this edge, in both directions. For a GA
upstream nothing is parsed or re-serialised: frames go through unchanged.

Sending is done by one writer task that drains a bounded queue, so callers never block on the
socket:

* control events (``send``/``send_frame``) wait for room: they are never dropped;
* caller audio (``send_audio``) is dropped when the queue is full (the upstream is stalled) and
  every drop is counted in :attr:`UpstreamSession.stats`. Audio appends are built from a string
  template (:func:`bridge.realtime.wire.append_frame`), never by ``json.dumps`` of base64.

Connection failures raise the typed errors of :mod:`bridge.errors`, whose ``retryable`` says
whether trying again makes sense. API keys are sent in headers only and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.protocol import State

from bridge import __version__
from bridge.bench import _probe
from bridge.config import Dialect, UpstreamSettings
from bridge.errors import (
    UpstreamAuthError,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamRejectedError,
)
from bridge.realtime import wire
from bridge.realtime.dialects import Translator

__all__ = ["UpstreamSession", "UpstreamStats", "upstream_url"]

log = logging.getLogger(__name__)

#: Largest frame accepted from an upstream (a long ``response.done`` or a big audio delta).
MAX_FRAME = 16 * 1024 * 1024
_CLOSE = object()


#: Frames framed and written together when the writer finds several queued.
_BATCH = 64


class _FastWriter:
    """``ws.send()`` without its per-message ``async with send_context()``.

    While the connection is OPEN and its transport is neither closing nor paused (no
    back-pressure), ``send()`` does only synchronous work: frame the text
    (``protocol.send_text``) and write what the protocol has to send (``send_data``). Doing
    that directly saves most of the per-append cost, and frames queued together go out in
    one transport write. Anything else (closing, back-pressure, errors) takes the ordinary
    ``await ws.send()`` path, which waits and raises as documented. If the websockets version
    lacks these attributes, the fast path is simply not used.
    """

    __slots__ = ("_protocol", "_ws")

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._protocol = ws.protocol

    @classmethod
    def attach(cls, ws: ClientConnection) -> _FastWriter | None:
        needed = ("protocol", "send_data", "paused", "transport")
        if all(hasattr(ws, a) for a in needed) and hasattr(ws.protocol, "send_text"):
            return cls(ws)
        return None

    def ready(self) -> bool:
        ws = self._ws
        return (
            self._protocol.state is State.OPEN
            and not getattr(ws, "paused", True)
            and not ws.transport.is_closing()
        )

    def write(self, frames: list[str]) -> None:
        send_text = self._protocol.send_text
        for frame in frames:
            send_text(frame.encode())
        self._ws.send_data()


@dataclass(slots=True)
class UpstreamStats:
    frames_sent: int = 0
    frames_received: int = 0
    audio_appends: int = 0
    audio_dropped: int = 0


def upstream_url(base: str, model: str | None) -> str:
    """The upstream URL with ``?model=`` set (an explicit one in ``base`` wins)."""
    parts = urlsplit(base)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if model and "model" not in query:
        query["model"] = model
    return urlunsplit(parts._replace(query=urlencode(query)))


def _headers(cfg: UpstreamSettings, api_key: str | None) -> dict[str, str]:
    headers = dict(cfg.headers)
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if cfg.dialect is Dialect.BETA:
        headers.setdefault("OpenAI-Beta", "realtime=v1")
    return headers


class UpstreamSession:
    """One Realtime session upstream. Use as ``async with UpstreamSession(cfg) as up:``.

    ``send``/``send_frame``/``send_audio`` take GA client events; ``frames()`` yields GA server
    frames as text. ``url``/``api_key``/``dialect`` override the settings (the relay passes the
    model a client asked for; calls pass their agent profile's upstream).
    """

    def __init__(
        self,
        cfg: UpstreamSettings,
        *,
        model: str | None = None,
        api_key: str | None = None,
        environ: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not cfg.url:
            raise UpstreamConnectError("no upstream URL configured", retryable=False)
        self.cfg = cfg
        self.url = upstream_url(cfg.url, model or cfg.model)
        self.dialect = cfg.dialect
        self._api_key = api_key if api_key is not None else cfg.api_key(environ)
        self._ssl = ssl_context
        self._translator = Translator(cfg.dialect)
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=cfg.send_queue)
        self._ws: ClientConnection | None = None
        self._writer: asyncio.Task[None] | None = None
        self._write_error: BaseException | None = None
        self.stats = UpstreamStats()
        # `rtbridge bench sip` times each audio append; None (nothing wrapped) otherwise
        self._probe_pending: deque[_probe.Pending] | None = None
        if _probe.ACTIVE is not None:
            self._probe_pending = deque()
            timed = _probe.ACTIVE.timed_send_audio(self.send_audio, self._probe_pending)
            self.send_audio = timed  # type: ignore[method-assign,assignment]

    def __repr__(self) -> str:  # never shows the key
        return f"UpstreamSession(url={self.url!r}, dialect={self.dialect.value})"

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> UpstreamSession:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the socket and start the writer. Raises an :class:`UpstreamError`."""
        kwargs: dict[str, Any] = {}
        if self.url.startswith("wss://") and self._ssl is not None:
            kwargs["ssl"] = self._ssl
        try:
            self._ws = await connect(
                self.url,
                additional_headers=_headers(self.cfg, self._api_key),
                open_timeout=self.cfg.connect_timeout_s,
                max_size=MAX_FRAME,
                compression=None,  # base64 audio does not compress; deflate costs CPU per frame
                proxy=None,
                user_agent_header=f"rtbridge/{__version__}",
                **kwargs,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode("utf-8", "replace")[:300] if exc.response.body else ""
            msg = f"upstream {self.url} refused the session: HTTP {status} {body}".strip()
            if status in (401, 403):
                raise UpstreamAuthError(msg, status=status) from exc
            raise UpstreamRejectedError(
                msg, status=status, retryable=status == 429 or status >= 500
            ) from exc
        except InvalidURI as exc:
            raise UpstreamConnectError(f"invalid upstream URL: {exc}", retryable=False) from exc
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise UpstreamConnectError(
                f"cannot connect to upstream {self.url}: {exc or type(exc).__name__}"
            ) from exc
        self._writer = asyncio.create_task(self._write_loop(), name=f"upstream-writer {self.url}")
        log.debug("upstream connected: %s (%s)", self.url, self.dialect.value)

    async def close(self) -> None:
        """Flush what is queued, close the socket, stop the writer. Safe to call twice."""
        if self._writer is not None and not self._writer.done():
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(_CLOSE)
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), timeout=2.0)
            except (TimeoutError, asyncio.CancelledError):
                self._writer.cancel()
        if self._ws is not None:
            await self._ws.close()

    # -- sending -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._write_error is not None:
            raise UpstreamClosedError(f"upstream write failed: {self._write_error}")
        if self._ws is None:
            raise UpstreamClosedError("upstream session is not connected")

    async def send(self, event: Mapping[str, Any]) -> None:
        """Queue one GA client event (waits for room; never dropped)."""
        self._check_open()
        if self._translator.needs_translation:
            for out in self._translator.client_to_dialect(dict(event)):
                await self._queue.put(wire.dumps(out))
        else:
            await self._queue.put(wire.dumps(event))

    async def send_frame(self, frame: str) -> None:
        """Queue one GA client frame as received from a client (unchanged for GA upstreams)."""
        self._check_open()
        if self._translator.needs_translation:
            for out in self._translator.client_to_dialect(wire.loads(frame)):
                await self._queue.put(wire.dumps(out))
        else:
            await self._queue.put(frame)

    def send_audio(self, audio: bytes) -> bool:
        """Queue caller audio as an append; returns False (and counts it) if dropped."""
        self._check_open()
        try:
            self._queue.put_nowait(wire.append_frame(audio))
        except asyncio.QueueFull:
            self.stats.audio_dropped += 1
            return False
        self.stats.audio_appends += 1
        return True

    async def _write_loop(self) -> None:
        assert self._ws is not None
        ws = self._ws
        queue = self._queue
        probe, pending = _probe.ACTIVE, self._probe_pending
        fast = _FastWriter.attach(ws)
        try:
            while True:
                batch = [await queue.get()]
                while len(batch) < _BATCH and not queue.empty():
                    batch.append(queue.get_nowait())
                closing = batch[-1] is _CLOSE
                frames = [f for f in batch if isinstance(f, str)]
                if fast is not None and fast.ready():
                    fast.write(frames)
                else:
                    for frame in frames:
                        await ws.send(frame)
                self.stats.frames_sent += len(frames)
                if pending is not None and probe is not None:
                    for frame in frames:
                        probe.sent(pending, frame)
                if closing:
                    return
        except ConnectionClosed as exc:
            self._write_error = exc
        except Exception as exc:
            self._write_error = exc
            log.warning("upstream writer stopped: %s", exc)

    # -- receiving -----------------------------------------------------------------------

    async def frames(self) -> AsyncIterator[str]:
        """GA server frames as text until the upstream closes.

        Ends with :class:`UpstreamClosedError` unless the close was a normal one (1000).
        """
        if self._ws is None:
            raise UpstreamClosedError("upstream session is not connected")
        ws = self._ws
        translate = self._translator.needs_translation
        try:
            async for msg in ws:
                self.stats.frames_received += 1
                frame = msg if isinstance(msg, str) else msg.decode("utf-8", "replace")
                if not translate:
                    yield frame
                    continue
                for out in self._translator.server_from_dialect(wire.loads(frame)):
                    yield wire.dumps(out)
        except ConnectionClosed as exc:
            raise self._closed(exc) from exc
        if ws.close_code not in (None, 1000):
            raise UpstreamClosedError(
                f"upstream closed the session: {ws.close_code} {ws.close_reason}",
                code=ws.close_code,
                reason=ws.close_reason or "",
            )

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Like :meth:`frames`, parsed into dicts."""
        async for frame in self.frames():
            yield wire.loads(frame)

    @staticmethod
    def _closed(exc: ConnectionClosed) -> UpstreamError:
        rcvd = exc.rcvd
        code = rcvd.code if rcvd is not None else None
        reason = rcvd.reason if rcvd is not None else ""
        return UpstreamClosedError(
            f"upstream connection lost: {code or 'no close frame'} {reason}".strip(),
            code=code,
            reason=reason,
        )
