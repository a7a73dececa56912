"""The upstream client: one WebSocket per session to a configured Realtime upstream.

rtbridge speaks GA to everything above this module; the upstream declares its dialect and its
:class:`~bridge.realtime.dialects.UpstreamTranslator` converts at this edge, in both directions.
For a GA (or Azure) upstream nothing is parsed or re-serialised: frames go through unchanged.
A translated upstream may answer some client events itself (a local ``conversation.item
.truncated``, a ``session.created`` before the upstream's first frame): those GA events come out
of :meth:`UpstreamSession.frames` in order with the upstream's own. Such a translator may also
want the time (GPT-Live's responses end on a pause in the model's audio): :meth:`frames` then
ticks it at the deadline it asks for, on the monotonic clock.

Sending is done by one writer task that drains a bounded queue, so callers never block on the
socket; but an audio append that finds the writer idle (nothing queued, the connection open
and not pushing back) is framed and written at once, in the caller's synchronous step: the
same bytes in the same order, without a task wake-up per 20 ms append:

* control events (``send``/``send_frame``) wait for room: they are never dropped;
* caller audio (``send_audio``) is dropped when the queue is full (the upstream is stalled) and
  every drop is counted in :attr:`UpstreamSession.stats`. Audio appends are built from a string
  template (:func:`bridge.realtime.wire.append_frame`), never by ``json.dumps`` of base64.

Connection failures raise the typed errors of :mod:`bridge.errors`, whose ``retryable`` says
whether trying again makes sense. API keys are sent as the upstream's auth style asks
(:class:`~bridge.config.UpstreamAuth`: a header, or Gemini's ``?key=``) and never logged:
:attr:`UpstreamSession.url`, which logs and ``repr()`` show, never carries the key.
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
from bridge.config import Dialect, UpstreamAuth, UpstreamSettings
from bridge.errors import (
    ProtocolError,
    UpstreamAuthError,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamRejectedError,
)
from bridge.realtime import wire
from bridge.realtime.client_frames import MaskKeys, text_frame
from bridge.realtime.dialects import Routed, UpstreamTranslator, upstream_translator
from bridge.tasks import cancel_and_wait
from media.clock import Clock, SystemClock

__all__ = ["UpstreamSession", "UpstreamStats", "upstream_url"]

log = logging.getLogger(__name__)

#: Largest frame accepted from an upstream (a long ``response.done`` or a big audio delta).
MAX_FRAME = 16 * 1024 * 1024
#: event names only rtbridge's translators make (a pass-through upstream's are refused)
_INTERNAL = "rtbridge.upstream."
_CLOSE = object()


#: Frames framed and written together when the writer finds several queued.
_BATCH = 64


class _FastWriter:
    """``ws.send()`` without its per-message ``async with send_context()``, nor websockets'
    per-frame objects and system call for a masking key.

    While the connection is OPEN, its transport neither closing nor paused (no back-pressure)
    and websockets has nothing of its own waiting to be written or a fragmented message under
    way, a text frame is built here (:mod:`bridge.realtime.client_frames`) and written to the
    transport directly; frames queued together go out in one transport write. Anything else
    (closing, back-pressure, errors) takes the ordinary ``await ws.send()`` path, which waits
    and raises as documented. If the websockets version lacks these attributes, the fast path
    is simply not used.
    """

    __slots__ = ("_masks", "_protocol", "_ws")

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._protocol = ws.protocol
        self._masks = MaskKeys()

    @classmethod
    def attach(cls, ws: ClientConnection) -> _FastWriter | None:
        needed = ("protocol", "paused", "transport")
        protocol_needs = ("state", "writes", "expect_continuation_frame")
        if all(hasattr(ws, a) for a in needed) and all(
            hasattr(ws.protocol, a) for a in protocol_needs
        ):
            return cls(ws)
        return None

    def ready(self) -> bool:
        ws, protocol = self._ws, self._protocol
        return (
            protocol.state is State.OPEN
            and not protocol.writes
            and not protocol.expect_continuation_frame
            and not getattr(ws, "paused", True)
            and not ws.transport.is_closing()
        )

    def write(self, frames: list[str]) -> None:
        masks = self._masks
        if len(frames) == 1:
            self._ws.transport.write(text_frame(frames[0].encode(), masks.next()))
            return
        self._ws.transport.write(b"".join(text_frame(f.encode(), masks.next()) for f in frames))


@dataclass(slots=True)
class UpstreamStats:
    frames_sent: int = 0
    frames_received: int = 0
    audio_appends: int = 0
    audio_dropped: int = 0
    frames_malformed: int = 0  # frames that were no Realtime event, skipped


def upstream_url(base: str, model: str | None) -> str:
    """The upstream URL with ``?model=`` set (an explicit one in ``base`` wins)."""
    parts = urlsplit(base)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if model and "model" not in query:
        query["model"] = model
    return urlunsplit(parts._replace(query=urlencode(query)))


def _headers(cfg: UpstreamSettings, api_key: str | None) -> dict[str, str]:
    headers = dict(cfg.headers)
    style = cfg.auth_style
    if api_key and style is UpstreamAuth.BEARER:
        headers["Authorization"] = f"Bearer {api_key}"
    elif api_key and style is UpstreamAuth.API_KEY:
        headers["api-key"] = api_key
    elif api_key and style is UpstreamAuth.GOOG_HEADER:
        headers["x-goog-api-key"] = api_key
    if cfg.dialect is Dialect.BETA:
        headers.setdefault("OpenAI-Beta", "realtime=v1")
    return headers


def _with_key(url: str, api_key: str) -> str:
    """``url`` with ``?key=`` (Gemini's query auth); only ever passed to ``connect``."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), ("key", api_key)]
    return urlunsplit(parts._replace(query=urlencode(query)))


class _End:
    """The reader's last word in the inbox: how the upstream ended."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException | None) -> None:
        self.exc = exc


class UpstreamSession:
    """One Realtime session upstream. Use as ``async with UpstreamSession(cfg) as up:``.

    ``send``/``send_frame``/``send_audio`` take GA client events; ``frames()`` yields GA server
    frames as text. ``model``/``api_key`` override the settings (the relay passes the model a
    client asked for). ``resume_handle`` (Gemini): resume that upstream session.
    """

    def __init__(
        self,
        cfg: UpstreamSettings,
        *,
        model: str | None = None,
        api_key: str | None = None,
        environ: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        resume_handle: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not cfg.url:
            raise UpstreamConnectError("no upstream URL configured", retryable=False)
        self.cfg = cfg
        self._clock = clock or SystemClock()
        self.dialect = cfg.dialect
        self.translator: UpstreamTranslator = upstream_translator(
            cfg.dialect,
            model=cfg.model,
            resume_handle=resume_handle,
            delegation_model=cfg.delegation_model,
        )
        in_url = self.translator.model_in_url
        self.url = upstream_url(cfg.url, (model or cfg.model) if in_url else None)
        self._api_key = api_key if api_key is not None else cfg.api_key(environ)
        self._ssl = ssl_context
        self._translator = self.translator
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=cfg.send_queue)
        # translated upstreams: GA frames for frames(), from the reader and local answers
        self._inbox: asyncio.Queue[str | _End] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None
        self._writer: asyncio.Task[None] | None = None
        self._fast: _FastWriter | None = None
        #: the writer task waits for the queue (nothing it took is still being written)
        self._writer_idle = False
        self._write_error: BaseException | None = None
        self.stats = UpstreamStats()
        # `rtbridge bench sip` times each audio append; None (nothing wrapped) otherwise
        self._probe_pending: deque[_probe.Pending] | None = None
        probe = _probe.ACTIVE
        if probe is not None:
            pending: deque[_probe.Pending] = deque()
            self._probe_pending = pending
            probe.hook(self, "send_audio", lambda send: probe.timed_send_audio(send, pending))

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
        target = self.url
        if self._api_key and self.cfg.auth_style is UpstreamAuth.QUERY:
            target = _with_key(self.url, self._api_key)
        try:
            self._ws = await connect(
                target,
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
        self._fast = _FastWriter.attach(self._ws)
        self._writer = asyncio.create_task(self._write_loop(), name=f"upstream-writer {self.url}")
        if not self._translator.passthrough:
            self._route(self._translator.opening())
            self._reader = asyncio.create_task(
                self._read_loop(self._ws), name=f"upstream-reader {self.url}"
            )
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
                me = asyncio.current_task()
                if me is not None and me.cancelling():
                    raise  # this close was cancelled, not (only) the writer
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await cancel_and_wait(self._reader)

    def abort(self) -> None:
        """Drop the connection at once (no close handshake): the reader sees it closed."""
        ws = self._ws
        if ws is not None and ws.transport is not None:
            ws.transport.abort()

    # -- sending -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._write_error is not None:
            raise UpstreamClosedError(f"upstream write failed: {self._write_error}")
        if self._ws is None:
            raise UpstreamClosedError("upstream session is not connected")

    def _route(self, routed: Routed) -> list[str]:
        """Hand a translation's GA events to frames(); return its upstream frames to queue."""
        for ev in routed.client:
            self._inbox.put_nowait(wire.dumps(ev))
        return [*(wire.dumps(ev) for ev in routed.upstream), *routed.frames]

    async def send(self, event: Mapping[str, Any]) -> None:
        """Queue one GA client event (waits for room; never dropped)."""
        self._check_open()
        if self._translator.passthrough:
            await self._queue.put(wire.dumps(event))
            return
        for frame in self._route(self._translator.to_upstream(event)):
            await self._queue.put(frame)

    async def send_frame(self, frame: str) -> None:
        """Queue one GA client frame as received from a client (unchanged for GA upstreams)."""
        self._check_open()
        if self._translator.passthrough:
            await self._queue.put(frame)
            return
        for out in self._route(self._translator.to_upstream(wire.loads(frame))):
            await self._queue.put(out)

    def send_audio(self, audio: bytes) -> bool:
        """Queue caller audio as an append; returns False (and counts it) if dropped."""
        self._check_open()
        if self._translator.passthrough:
            frames = [wire.append_frame(audio)]
        else:
            frames = self._route(self._translator.append_audio(audio))
        fast = self._fast
        if self._writer_idle and fast is not None and self._queue.empty() and fast.ready():
            return self._write_now(fast, frames)
        try:
            for frame in frames:
                self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.stats.audio_dropped += 1
            return False
        self.stats.audio_appends += 1
        return True

    def _write_now(self, fast: _FastWriter, frames: list[str]) -> bool:
        """Write an append's frames from the caller's step (the writer is idle: order holds)."""
        try:
            fast.write(frames)
        except Exception as exc:
            self._writer_failed(exc)
            self.stats.audio_dropped += 1
            return False
        self.stats.frames_sent += len(frames)
        self.stats.audio_appends += 1
        pending, probe = self._probe_pending, _probe.ACTIVE
        if pending is not None and probe is not None:
            for frame in frames:
                probe.sent(pending, frame)
        return True

    def _writer_failed(self, exc: BaseException) -> None:
        self._write_error = exc
        if not isinstance(exc, ConnectionClosed):
            log.warning("upstream writer stopped: %s", exc)
            self.abort()  # the reader must notice too: it is what reconnects

    async def _write_loop(self) -> None:
        assert self._ws is not None
        ws = self._ws
        queue = self._queue
        probe, pending = _probe.ACTIVE, self._probe_pending
        fast = self._fast
        try:
            while True:
                self._writer_idle = True
                try:
                    batch = [await queue.get()]
                finally:
                    self._writer_idle = False
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
        except Exception as exc:
            self._writer_failed(exc)

    # -- receiving -----------------------------------------------------------------------

    async def frames(self) -> AsyncIterator[str]:
        """GA server frames as text until the upstream closes.

        Ends with :class:`UpstreamClosedError` unless the close was a normal one (1000).
        """
        if self._ws is None:
            raise UpstreamClosedError("upstream session is not connected")
        ws = self._ws
        if not self._translator.passthrough:
            async for frame in self._translated_frames():
                yield frame
            self._raise_unless_normal(ws)
            return
        try:
            async for msg in ws:
                self.stats.frames_received += 1
                yield msg if isinstance(msg, str) else msg.decode("utf-8", "replace")
        except ConnectionClosed as exc:
            raise self._closed(exc) from exc
        self._raise_unless_normal(ws)

    @staticmethod
    def _raise_unless_normal(ws: ClientConnection) -> None:
        if ws.close_code not in (None, 1000):
            raise UpstreamClosedError(
                f"upstream closed the session: {ws.close_code} {ws.close_reason}",
                code=ws.close_code,
                reason=ws.close_reason or "",
            )

    async def _read_loop(self, ws: ClientConnection) -> None:
        """Translated upstreams: upstream frames -> GA frames in the inbox (and replies out)."""
        tr = self._translator
        end: BaseException | None = None
        try:
            async for msg in ws:
                self.stats.frames_received += 1
                try:
                    parsed = wire.loads(msg, typed=False)
                except ProtocolError as exc:
                    self._malformed(msg, exc)
                    continue
                for frame in self._route(tr.from_upstream(parsed, self._clock.now())):
                    await self._queue.put(frame)
        except ConnectionClosed as exc:
            end = exc
        except Exception as exc:
            log.warning("upstream reader stopped: %s", exc)
            end = exc
        self._inbox.put_nowait(_End(end))

    async def _translated_frames(self) -> AsyncIterator[str]:
        tr, inbox = self._translator, self._inbox
        while True:
            due = tr.deadline()
            if due is None:
                item = await inbox.get()
            else:
                try:
                    item = await asyncio.wait_for(inbox.get(), max(0.0, due - self._clock.now()))
                except TimeoutError:
                    for frame in self._route(tr.tick(self._clock.now())):
                        await self._queue.put(frame)
                    continue
            if isinstance(item, _End):
                while not inbox.empty():  # local answers queued behind the end
                    late = inbox.get_nowait()
                    if isinstance(late, str):
                        yield late
                inbox.put_nowait(item)  # a later frames() call ends the same way
                if isinstance(item.exc, ConnectionClosed):
                    raise self._closed(item.exc) from item.exc
                if item.exc is not None:
                    raise UpstreamClosedError(f"upstream reader failed: {item.exc}")
                return
            yield item

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Like :meth:`frames`, parsed into dicts. A frame that is no Realtime event (text
        that is not JSON, a JSON array, an object without a string ``type``, a binary frame
        that is none of these) is counted (``stats.frames_malformed``), logged and skipped:
        one bad frame never ends a call."""
        passthrough = self._translator.passthrough
        async for frame in self.frames():
            try:
                event = wire.loads(frame)
            except ProtocolError as exc:
                self._malformed(frame, exc)
                continue
            if passthrough and str(event["type"]).startswith(_INTERNAL):
                # rtbridge's own signals (going away, resumption) come from its translators,
                # never off the wire: a GA upstream sending them looped renewals
                self._malformed(frame, ProtocolError(f"{event['type']} is rtbridge's own event"))
                continue
            yield event

    def _malformed(self, frame: str | bytes, exc: ProtocolError) -> None:
        """Log the first bad frame of the session and then every 1000th (a flood of them
        must not flood the log)."""
        self.stats.frames_malformed += 1
        n = self.stats.frames_malformed
        if n == 1 or n % 1000 == 0:
            log.warning(
                "upstream sent a frame that is no Realtime event (%s; %d so far), skipped: %.80r",
                exc,
                n,
                frame,
            )

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
