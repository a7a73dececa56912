"""A call's session with its agent: open, configure for the leg, stream events, reconnect.

The leg, not the client, decides the session's audio format: every ``session.update`` that
reaches the upstream through a call (the profile's, a client's, the sideband's) has its
``audio.input.format``/``audio.output.format`` set by :func:`enforce_formats`.

Format negotiation is adaptive: the call asks for the trunk's G.711 codec (pass-through, no
resampling at all). If the upstream refuses it with an ``error`` naming the format (OpenAI-style
``invalid_value`` on ``session.audio.*.format``), the session falls back to PCM16 24 kHz and the
leg transcodes. The format the upstream reports in ``session.updated`` is the one used.

Server events are parsed here, once, into the typed values of
:mod:`bridge.calls.agent_events` (:meth:`AgentSession.events`).

If the upstream socket is lost, whether the reader or a send notices first, :meth:`events`
reconnects within the configured window, replays the session configuration, yields one
:class:`~bridge.calls.agent_events.Reconnected` and goes on (the conversation context on the
upstream is lost; the call is not). Meanwhile :meth:`AgentSession.send` waits for the new
socket and then sends, so call control's writer resumes where it stopped; caller audio is
dropped (and counted) until then. When the window passes, :meth:`events` raises the
:class:`~bridge.errors.UpstreamError` and the call ends. An upstream that said its session
expired (``error`` with code ``session_expired``) is not reconnected:
:class:`~bridge.errors.UpstreamExpiredError` is raised when its socket closes.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from bridge.calls.agent_events import (
    AgentEvent,
    Reconnected,
    SessionUpdated,
    UpstreamErrorEvent,
    parse_agent_event,
)
from bridge.calls.control import merge_telephony_tools
from bridge.config import AgentProfile
from bridge.errors import UpstreamClosedError, UpstreamError, UpstreamExpiredError
from bridge.realtime.formats import AudioFormat
from bridge.upstream import UpstreamSession
from media.clock import Clock, SystemClock

__all__ = ["AgentSession", "SessionRefused", "build_session", "enforce_formats"]

log = logging.getLogger(__name__)

_READ_ONLY = ("id", "object", "expires_at", "client_secret")
#: How long a ``session.updated`` with an unexpected format waits for the real answer.
PROVISIONAL_WAIT_S = 1.0


class SessionRefused(UpstreamError):
    """The upstream answered our session configuration with an error."""

    retryable = False


def build_session(profile: AgentProfile, fmt: AudioFormat) -> dict[str, Any]:
    """The GA session a call starts with, from its agent profile."""
    session: dict[str, Any] = {
        "type": "realtime",
        "model": profile.upstream.model,
        "audio": {
            "input": {"format": fmt.to_ga(), "turn_detection": {"type": "server_vad"}},
            "output": {"format": fmt.to_ga()},
        },
    }
    if profile.instructions:
        session["instructions"] = profile.instructions
    if profile.voice:
        session["audio"]["output"]["voice"] = profile.voice
    if profile.tools:
        session["tools"] = copy.deepcopy(profile.tools)
    if profile.telephony_tools:
        session = merge_telephony_tools(session)
    return session


def enforce_formats(session: Mapping[str, Any], fmt: AudioFormat) -> dict[str, Any]:
    """A copy of a GA session object with both audio formats set to the leg's format."""
    out = dict(session)
    audio = dict(out.get("audio") or {})
    for direction in ("input", "output"):
        part = dict(audio.get(direction) or {})
        part["format"] = fmt.to_ga()
        audio[direction] = part
    out["audio"] = audio
    return out


def _format_of(session: Mapping[str, Any]) -> AudioFormat | None:
    try:
        return AudioFormat.from_ga(session["audio"]["output"]["format"])
    except (KeyError, TypeError, ValueError):
        return None


class AgentSession:
    """The upstream side of one call. ``async with AgentSession(...) as agent:``."""

    def __init__(
        self,
        profile: AgentProfile,
        *,
        preferred: AudioFormat,
        ready_timeout_s: float = 10.0,
        reconnect_window_s: float = 5.0,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.profile = profile
        self.format = preferred
        self.session: dict[str, Any] = build_session(profile, preferred)
        self._ready_timeout = ready_timeout_s
        self._window = reconnect_window_s
        self._environ = environ
        self._clock = clock or SystemClock()
        self._up: UpstreamSession | None = None
        self._usable = asyncio.Event()  # set while the socket is open and configured
        self._pending: list[dict[str, Any]] = []  # events read while configuring
        self._expired = False
        self.reconnects = 0
        self.refusals: list[str] = []  # upstream errors answered by negotiation (kept for logs)
        self.closed = False

    async def __aenter__(self) -> AgentSession:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect and configure; raises :class:`UpstreamError` (never hangs)."""
        self._up = self._new_upstream()
        await self._up.connect()
        try:
            await self._configure(self.session)
        except BaseException:
            await self._up.close()
            raise
        self._usable.set()

    def _new_upstream(self) -> UpstreamSession:
        return UpstreamSession(self.profile.upstream, environ=self._environ, clock=self._clock)

    async def _configure(self, session: dict[str, Any]) -> None:
        assert self._up is not None
        await self._up.send({"type": "session.update", "session": session})
        try:
            async with asyncio.timeout(self._ready_timeout):
                updated = await self._await_updated()
        except TimeoutError:
            raise UpstreamError(
                f"upstream did not confirm the session within {self._ready_timeout:g} s",
                retryable=True,
            ) from None
        if updated is None and self.format is not AudioFormat.PCM16:
            log.info("upstream refused %s; falling back to pcm16 (transcoding)", self.format)
            self.format = AudioFormat.PCM16
            session = enforce_formats(session, AudioFormat.PCM16)
            await self._up.send({"type": "session.update", "session": session})
            async with asyncio.timeout(self._ready_timeout):
                updated = await self._await_updated()
        if updated is None:
            raise SessionRefused("upstream refused the session configuration")
        reported = _format_of(updated)
        if reported is not None:
            self.format = reported
        self.session = {k: v for k, v in updated.items() if k not in _READ_ONLY}

    async def _await_updated(self) -> dict[str, Any] | None:
        """The ``session.updated`` that answers our update, or None if an ``error`` came first.

        A ``session.updated`` reporting another format than we asked for is provisional: some
        dialects deliver one that does not answer our update (xAI's late ``session.created``,
        forwarded as ``session.updated`` by the translator). If the matching one (or an error)
        follows within :data:`PROVISIONAL_WAIT_S`, it wins; otherwise the reported format is
        what the upstream gave us, and we adopt it.
        """
        assert self._up is not None
        provisional: dict[str, Any] | None = None
        events = self._up.events().__aiter__()
        while True:
            try:
                if provisional is None:
                    event = await events.__anext__()
                else:
                    event = await asyncio.wait_for(events.__anext__(), PROVISIONAL_WAIT_S)
            except TimeoutError:
                return provisional
            except StopAsyncIteration:
                raise UpstreamClosedError(
                    "upstream closed while the session was being configured"
                ) from None
            kind = event.get("type")
            if kind == "session.updated":
                raw = event.get("session")
                session = dict(raw) if isinstance(raw, Mapping) else {}
                if _format_of(session) in (None, self.format):
                    return session
                provisional = session
                continue
            if kind == "error":
                err = event.get("error") or {}
                log.warning("upstream refused session.update: %s", err.get("message"))
                self.refusals.append(str(err.get("message", "")))
                return None
            self._pending.append(event)

    # -- traffic ------------------------------------------------------------------------

    def send_audio(self, audio: bytes) -> bool:
        """Caller audio in the session format; False when dropped (upstream stalled, or the
        socket is being replaced)."""
        up = self._up
        if up is None or not self._usable.is_set():
            return False
        try:
            return up.send_audio(audio)
        except UpstreamError:
            return False

    async def send(self, event: Mapping[str, Any]) -> None:
        """A control event; ``session.update`` gets the leg's audio formats.

        If the socket is lost, this waits until :meth:`events` has a new one and sends there;
        it raises :class:`UpstreamClosedError` only once the session is closed for good.
        """
        if event.get("type") == "session.update" and isinstance(event.get("session"), Mapping):
            event = {**event, "session": enforce_formats(event["session"], self.format)}
        while True:
            await self._usable.wait()
            up = self._up
            if self.closed or up is None:
                raise UpstreamClosedError("agent session is closed")
            try:
                await up.send(event)
                return
            except UpstreamError as exc:
                self._lost(up, exc)

    def _lost(self, up: UpstreamSession, exc: BaseException) -> None:
        """A send found the socket broken: make the reader notice and reconnect."""
        if self._up is up and self._usable.is_set():
            log.warning("upstream send failed (%s); waiting for the reconnect", exc)
            self._usable.clear()
            up.abort()

    async def events(self) -> AsyncIterator[AgentEvent]:
        """Server events until :meth:`close`; reconnects within the window on socket loss."""
        while not self.closed:
            while self._pending:
                yield parse_agent_event(self._pending.pop(0))
            up = self._up
            assert up is not None
            try:
                async for raw in up.events():
                    event = parse_agent_event(raw)
                    if isinstance(event, SessionUpdated):
                        self.session = {
                            k: v for k, v in event.session.items() if k not in _READ_ONLY
                        }
                    elif isinstance(event, UpstreamErrorEvent) and event.code == "session_expired":
                        self._expired = True
                    yield event
                if self.closed:
                    return
                raise UpstreamClosedError("upstream closed the session")
            except UpstreamError as exc:
                self._usable.clear()
                if self.closed:
                    return
                if self._expired:
                    raise UpstreamExpiredError(f"upstream session expired: {exc}") from exc
                await self._reconnect(exc)
                yield Reconnected(self.reconnects)

    async def _reconnect(self, cause: UpstreamError) -> None:
        now = self._clock.now
        deadline = now() + self._window
        delay = 0.1
        last: UpstreamError = cause
        log.warning("upstream lost (%s); reconnecting for up to %.1f s", cause, self._window)
        while now() < deadline:
            if self._up is not None:
                await self._up.close()
            self._up = self._new_upstream()
            try:
                await self._up.connect()
                await self._configure(enforce_formats(self.session, self.format))
                self.reconnects += 1
                self._usable.set()
                return
            except UpstreamError as exc:
                last = exc
            await asyncio.sleep(min(delay, max(0.0, deadline - now())))
            delay = min(delay * 2, 1.0)
        raise last

    async def close(self) -> None:
        self.closed = True
        self._usable.set()  # senders waiting for a reconnect learn that it is over
        if self._up is not None:
            await self._up.close()
